// JSON from outside keel — request bodies, a model directory's config.json, tokenizer.json, chat-template
// kwargs — parsed with a bound on nesting. nlohmann's parser is iterative, but the value it builds is walked
// recursively by everything after it (copy, dump, ==, the template's values): a 1 MB body of 100k `[`
// overflowed the stack of `keel serve`. A value from parse_json_bounded nests at most `max_depth` levels, so no
// later recursion over it can go deeper.
#pragma once

#include <string_view>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace keel {

// Request bodies: what clients send nests under 10 levels (a tool's JSON schema is the deepest, ~10).
inline constexpr int kRequestJsonDepth = 64;
// Files of a model directory (config.json, tokenizer.json, tokenizer_config.json): written by tools, never
// deep, but read before anything has been checked.
inline constexpr int kModelFileJsonDepth = 256;

// Parses `text` as one JSON value. A value whose arrays and objects nest deeper than `max_depth` (the top
// level counts 1) is refused as soon as the parser opens level max_depth + 1: "<what> nests deeper than 64
// levels". Invalid JSON: "<what> is not valid JSON: <parser message>". Both are kInvalidArgument.
template <typename Json>
Result<Json> parse_json_bounded(std::string_view text, int max_depth, std::string_view what);

extern template Result<nlohmann::json> parse_json_bounded<nlohmann::json>(std::string_view, int, std::string_view);
extern template Result<nlohmann::ordered_json> parse_json_bounded<nlohmann::ordered_json>(std::string_view, int,
                                                                                          std::string_view);

}  // namespace keel
