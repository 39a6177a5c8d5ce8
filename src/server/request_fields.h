// Readers for JSON request fields. An absent or null field leaves the default; a wrong type or a value out of
// range is an error whose message starts with the field's name ("temperature: expected a number in [0, 2],
// got \"hot\""), which ApiError turns into OpenAI's `param`.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "engine/request.h"

namespace keel::server {

using json = nlohmann::ordered_json;

// Every route's body, parsed once here: a JSON object nesting at most kRequestJsonDepth (64) levels. Errors
// (kInvalidArgument, a 400 in the route's shape): "request body nests deeper than 64 levels", "request body is not
// valid JSON: ...", "request body: expected a JSON object, got array [1,2]".
Result<json> parse_request_body(std::string_view bytes);

// Short description of a JSON value for error messages: its type and the first ~40 characters of its text,
// written without serialising the rest of the value.
std::string describe(const json& value);

bool has(const json& body, const char* name);  // present and not null
Status read_float(const json& body, const char* name, double lo, double hi, float* out);
Status read_int(const json& body, const char* name, int64_t lo, int64_t hi, int* out);
Status read_uint64(const json& body, const char* name, uint64_t* out);
Status read_bool(const json& body, const char* name, bool* out);
Status read_string(const json& body, const char* name, std::string* out);
// A string or an array of strings.
Status read_stop(const json& body, const char* name, std::vector<std::string>* out);
// An array of token ids, each in [0, vocab).
Status read_token_ids(const json& value, const std::string& name, int32_t vocab, std::vector<int32_t>* out);

// The sampling fields shared by the OpenAI routes (temperature, top_p, top_k, min_p, seed, penalties,
// logit_bias).
Status read_sampling(const json& body, engine::SamplingParams* out);
// OpenAI's logit_bias: {"token id": bias in [-100, 100], ...}. Ids are checked against the vocabulary later.
Status read_logit_bias(const json& body, std::vector<std::pair<int32_t, float>>* out);

}  // namespace keel::server
