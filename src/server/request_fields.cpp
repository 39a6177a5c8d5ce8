#include "server/request_fields.h"

#include <charconv>
#include <cmath>
#include <limits>

#include "base/json_parse.h"

namespace keel::server {

namespace {

constexpr size_t kDescribeChars = 40;

// Appends `value`'s compact JSON text to `out` until `out` holds more than `limit` characters. Each level
// writes at least one character, so the recursion is no deeper than `limit`.
void append_prefix(const json& value, size_t limit, std::string& out) {
  if (out.size() > limit) return;
  if (value.is_array() || value.is_object()) {
    out += value.is_array() ? '[' : '{';
    bool first = true;
    for (auto it = value.begin(); it != value.end() && out.size() <= limit; ++it) {
      if (!first) out += ',';
      first = false;
      if (value.is_object()) {
        append_prefix(json(it.key().substr(0, limit)), limit, out);
        out += ':';
      }
      append_prefix(*it, limit, out);
    }
    out += value.is_array() ? ']' : '}';
    return;
  }
  if (value.is_string()) {
    // A prefix of the string only: dumping all of a 25 MB string to show 40 characters of it would be waste.
    const std::string& s = value.get_ref<const std::string&>();
    out += json(s.substr(0, limit + 1)).dump(-1, ' ', false, json::error_handler_t::replace);
    return;
  }
  out += value.dump();
}

}  // namespace

Result<json> parse_request_body(std::string_view bytes) {
  KEEL_ASSIGN_OR_RETURN(json body, parse_json_bounded<json>(bytes, kRequestJsonDepth, "request body"));
  if (!body.is_object()) return invalid_argument("request body: expected a JSON object, got {}", describe(body));
  return body;
}

std::string describe(const json& value) {
  std::string text;
  append_prefix(value, kDescribeChars, text);
  if (text.size() > kDescribeChars) {
    // Cut on a character boundary: half a UTF-8 character made the error JSON fail to serialise (found by
    // fuzz/openai_request: a long key with multi-byte characters).
    size_t cut = kDescribeChars - 3;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
    text = text.substr(0, cut) + "...";
  }
  return fmt::format("{} {}", value.type_name(), text);
}

bool has(const json& body, const char* name) {
  auto it = body.find(name);
  return it != body.end() && !it->is_null();
}

Status read_float(const json& body, const char* name, double lo, double hi, float* out) {
  if (!has(body, name)) return Status();
  const json& v = body[name];
  if (!v.is_number()) return invalid_argument("{}: expected a number, got {}", name, describe(v));
  double d = v.get<double>();
  if (!(d >= lo && d <= hi)) return invalid_argument("{}: expected a number in [{}, {}], got {}", name, lo, hi, d);
  *out = static_cast<float>(d);
  return Status();
}

Status read_int(const json& body, const char* name, int64_t lo, int64_t hi, int* out) {
  if (!has(body, name)) return Status();
  const json& v = body[name];
  bool integral = v.is_number_integer() || (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>() &&
                                            std::abs(v.get<double>()) < 1e15);
  if (!integral) return invalid_argument("{}: expected an integer, got {}", name, describe(v));
  int64_t i = v.is_number_unsigned() ? static_cast<int64_t>(std::min<uint64_t>(v.get<uint64_t>(), INT64_MAX))
              : v.is_number_integer() ? v.get<int64_t>()
                                      : static_cast<int64_t>(v.get<double>());
  if (i < lo || i > hi) return invalid_argument("{}: expected an integer in [{}, {}], got {}", name, lo, hi, i);
  *out = static_cast<int>(i);
  return Status();
}

Status read_uint64(const json& body, const char* name, uint64_t* out) {
  if (!has(body, name)) return Status();
  const json& v = body[name];
  if (!v.is_number_integer()) return invalid_argument("{}: expected an integer, got {}", name, describe(v));
  // Negative seeds are accepted (some clients send -1); their two's-complement bits seed the generator.
  *out = v.is_number_unsigned() ? v.get<uint64_t>() : static_cast<uint64_t>(v.get<int64_t>());
  return Status();
}

Status read_bool(const json& body, const char* name, bool* out) {
  if (!has(body, name)) return Status();
  const json& v = body[name];
  if (!v.is_boolean()) return invalid_argument("{}: expected true or false, got {}", name, describe(v));
  *out = v.get<bool>();
  return Status();
}

Status read_string(const json& body, const char* name, std::string* out) {
  if (!has(body, name)) return Status();
  const json& v = body[name];
  if (!v.is_string()) return invalid_argument("{}: expected a string, got {}", name, describe(v));
  *out = v.get<std::string>();
  return Status();
}

Status read_stop(const json& body, const char* name, std::vector<std::string>* out) {
  if (!has(body, name)) return Status();
  const json& v = body[name];
  if (v.is_string()) {
    out->push_back(v.get<std::string>());
    return Status();
  }
  if (!v.is_array()) return invalid_argument("{}: expected a string or an array of strings, got {}", name, describe(v));
  for (size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_string()) return invalid_argument("{}[{}]: expected a string, got {}", name, i, describe(v[i]));
    out->push_back(v[i].get<std::string>());
  }
  return Status();
}

Status read_token_ids(const json& value, const std::string& name, int32_t vocab, std::vector<int32_t>* out) {
  if (!value.is_array()) return invalid_argument("{}: expected an array of token ids, got {}", name, describe(value));
  out->reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    const json& t = value[i];
    if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= vocab) {
      return invalid_argument("{}[{}]: expected a token id in [0, {}), got {}", name, i, vocab, describe(t));
    }
    out->push_back(static_cast<int32_t>(t.get<int64_t>()));
  }
  return Status();
}

Status read_sampling(const json& body, engine::SamplingParams* out) {
  constexpr double kBig = 1e9;
  KEEL_RETURN_IF_ERROR(read_float(body, "temperature", 0.0, 2.0, &out->temperature));
  KEEL_RETURN_IF_ERROR(read_float(body, "top_p", 0.0, 1.0, &out->top_p));
  if (has(body, "top_p") && out->top_p == 0.0f) return invalid_argument("top_p: must be > 0, got 0");
  int top_k = out->top_k;
  KEEL_RETURN_IF_ERROR(read_int(body, "top_k", -1, std::numeric_limits<int32_t>::max(), &top_k));
  out->top_k = top_k < 0 ? 0 : top_k;  // -1 means off, as in vLLM
  KEEL_RETURN_IF_ERROR(read_float(body, "min_p", 0.0, 1.0, &out->min_p));
  KEEL_RETURN_IF_ERROR(read_float(body, "presence_penalty", -2.0, 2.0, &out->presence_penalty));
  KEEL_RETURN_IF_ERROR(read_float(body, "frequency_penalty", -2.0, 2.0, &out->frequency_penalty));
  KEEL_RETURN_IF_ERROR(read_float(body, "repetition_penalty", 0.0, kBig, &out->repetition_penalty));
  if (has(body, "repetition_penalty") && out->repetition_penalty == 0.0f) {
    return invalid_argument("repetition_penalty: must be > 0, got 0");
  }
  KEEL_RETURN_IF_ERROR(read_uint64(body, "seed", &out->seed));
  KEEL_RETURN_IF_ERROR(read_logit_bias(body, &out->logit_bias));
  return out->validate();
}

Status read_logit_bias(const json& body, std::vector<std::pair<int32_t, float>>* out) {
  if (!has(body, "logit_bias")) return Status();
  const json& map = body["logit_bias"];
  if (!map.is_object())
    return invalid_argument("logit_bias: expected an object of token id -> bias, got {}", describe(map));
  out->clear();
  for (const auto& [key, value] : map.items()) {
    int64_t id = -1;
    const auto [end, ec] = std::from_chars(key.data(), key.data() + key.size(), id);
    if (ec != std::errc() || end != key.data() + key.size() || id < 0 || id > std::numeric_limits<int32_t>::max())
      return invalid_argument("logit_bias: expected token ids as keys, got \"{}\"", key);
    if (!value.is_number() || !(value.get<double>() >= -100.0 && value.get<double>() <= 100.0))
      return invalid_argument("logit_bias: the bias of token {}: expected a number in [-100, 100], got {}", key,
                              describe(value));
    out->push_back({static_cast<int32_t>(id), static_cast<float>(value.get<double>())});
  }
  return Status();
}

}  // namespace keel::server
