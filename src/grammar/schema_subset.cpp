#include "grammar/schema_subset.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <string_view>

namespace keel::grammar {

namespace {

using json = nlohmann::ordered_json;

// Assertions xgrammar enforces (cpp/json_schema_converter.cc). multipleOf only for integers: for numbers it is
// ignored there, so it is refused here.
constexpr std::array<std::string_view, 29> kEnforced = {
    "type",          "properties",      "required",         "additionalProperties", "patternProperties",
    "propertyNames", "minProperties",   "maxProperties",    "items",                "prefixItems",
    "minItems",      "maxItems",        "enum",             "const",                "anyOf",
    "oneOf",         "allOf",           "$ref",             "$defs",                "definitions",
    "minLength",     "maxLength",       "pattern",          "format",               "minimum",
    "maximum",       "exclusiveMinimum", "exclusiveMaximum", "multipleOf"};
constexpr std::array<std::string_view, 10> kAnnotations = {"title",     "description", "default", "examples", "deprecated",
                                                           "readOnly", "writeOnly",   "$schema", "$comment", "$id"};
// The formats xgrammar turns into a pattern; any other value is refused rather than read as a plain string.
constexpr std::array<std::string_view, 14> kFormats = {
    "date-time", "date", "time", "duration", "email", "hostname", "ipv4", "ipv6", "uuid", "uri", "uri-reference",
    "uri-template", "json-pointer", "relative-json-pointer"};
constexpr std::array<std::string_view, 7> kTypes = {"object", "array", "string", "number", "integer", "boolean", "null"};
constexpr int kMaxDepth = 64;  // request bodies nest at most 64 levels (request_fields.h): this is a backstop
// xgrammar 0.2.5 crashes (SIGSEGV in EarleyParser::ExpandNextRuleRefElementOnFSM while compiling) on a pattern
// quantifier above 128: "a{128}" compiles, "a{129}" and "a{200,}" do not. Longer patterns also cost compile time.
constexpr int64_t kMaxPatternCount = 128;
constexpr size_t kMaxPatternBytes = 1000;

// The largest count of a {n}, {n,} or {n,m} quantifier in `pattern` (escaped braces and character classes
// skipped), or -1 when there is none.
int64_t largest_quantifier(const std::string& pattern) {
  int64_t largest = -1;
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); i++) {
    const char c = pattern[i];
    if (c == '\\') {
      i++;
      continue;
    }
    if (in_class) {
      in_class = c != ']';
      continue;
    }
    if (c == '[') {
      in_class = true;
      continue;
    }
    if (c != '{') continue;
    for (size_t j = i + 1; j < pattern.size() && (std::isdigit(static_cast<unsigned char>(pattern[j])) || pattern[j] == ',');
         j++) {
      if (!std::isdigit(static_cast<unsigned char>(pattern[j]))) continue;
      int64_t n = 0;
      while (j < pattern.size() && std::isdigit(static_cast<unsigned char>(pattern[j])) && n <= kMaxPatternCount)
        n = n * 10 + (pattern[j++] - '0');
      largest = std::max(largest, n);
      j--;
    }
  }
  return largest;
}

template <size_t N>
bool in(const std::array<std::string_view, N>& set, std::string_view s) {
  return std::find(set.begin(), set.end(), s) != set.end();
}

std::string escape_pointer(const std::string& key) {
  std::string out;
  for (char c : key) {
    if (c == '~') out += "~0";
    else if (c == '/') out += "~1";
    else out += c;
  }
  return out;
}

class Checker {
 public:
  explicit Checker(const std::string& where) : where_(where) {}

  Status schema(const json& s, const std::string& at, int depth) {
    if (depth > kMaxDepth) return fail(at, "the schema nests deeper than {} levels", kMaxDepth);
    if (s.is_boolean()) return Status();
    if (!s.is_object()) return fail(at, "expected a schema (an object or a boolean), got {}", s.dump().substr(0, 40));
    for (const auto& [key, value] : s.items()) {
      if (in(kAnnotations, key) || key.starts_with("x-")) continue;
      if (!in(kEnforced, key)) return fail(at, "keyword \"{}\" is not supported", key);
      KEEL_RETURN_IF_ERROR(keyword(s, key, value, at, depth));
    }
    return Status();
  }

 private:
  template <typename... Args>
  Status fail(const std::string& at, fmt::format_string<Args...> f, Args&&... args) {
    return invalid_argument("{}: {} (at {})", where_, fmt::format(f, std::forward<Args>(args)...),
                            at.empty() ? "the schema's root" : at);
  }

  Status each(const json& v, const std::string& key, const std::string& at, int depth) {
    if (!v.is_array() || v.empty()) return fail(at, "{}: expected a non-empty array of schemas", key);
    for (size_t i = 0; i < v.size(); i++)
      KEEL_RETURN_IF_ERROR(schema(v[i], fmt::format("{}/{}/{}", at, key, i), depth + 1));
    return Status();
  }

  Status named(const json& v, const std::string& key, const std::string& at, int depth) {
    if (!v.is_object()) return fail(at, "{}: expected an object of schemas", key);
    for (const auto& [name, sub] : v.items())
      KEEL_RETURN_IF_ERROR(schema(sub, at + "/" + key + "/" + escape_pointer(name), depth + 1));
    return Status();
  }

  Status keyword(const json& s, const std::string& key, const json& v, const std::string& at, int depth) {
    if (key == "type") {
      auto known = [](const json& t) { return t.is_string() && in(kTypes, t.get<std::string>()); };
      if (known(v)) return Status();
      if (v.is_array() && !v.empty() && std::all_of(v.begin(), v.end(), known)) return Status();
      return fail(at, "type: expected one of object, array, string, number, integer, boolean, null (or an array "
                      "of them), got {}", v.dump().substr(0, 40));
    }
    if (key == "properties" || key == "patternProperties" || key == "$defs" || key == "definitions")
      return named(v, key, at, depth);
    if (key == "additionalProperties" || key == "propertyNames") return schema(v, at + "/" + key, depth + 1);
    if (key == "items") {
      if (v.is_array()) return fail(at, "items: an array of schemas is not supported; use prefixItems");
      return schema(v, at + "/items", depth + 1);
    }
    if (key == "prefixItems" || key == "anyOf" || key == "oneOf" || key == "allOf") return each(v, key, at, depth);
    if (key == "required") {
      if (!v.is_array() || !std::all_of(v.begin(), v.end(), [](const json& n) { return n.is_string(); }))
        return fail(at, "required: expected an array of property names");
      return Status();
    }
    if (key == "enum") {
      if (!v.is_array() || v.empty()) return fail(at, "enum: expected a non-empty array");
      return Status();
    }
    if (key == "$ref") {
      if (!v.is_string() || !v.get<std::string>().starts_with("#"))
        return fail(at, "$ref: only references inside the schema (\"#/$defs/...\") are supported, got {}",
                    v.dump().substr(0, 60));
      return Status();
    }
    if (key == "format") {
      if (!v.is_string() || !in(kFormats, v.get<std::string>()))
        return fail(at, "format {} is not supported (supported: date-time, date, time, duration, email, hostname, "
                        "ipv4, ipv6, uuid, uri, uri-reference, uri-template, json-pointer, relative-json-pointer)",
                    v.dump().substr(0, 40));
      return Status();
    }
    if (key == "pattern") {
      if (!v.is_string()) return fail(at, "pattern: expected a string");
      const std::string& pattern = v.get_ref<const std::string&>();
      if (pattern.size() > kMaxPatternBytes)
        return fail(at, "pattern: longer than {} bytes ({})", kMaxPatternBytes, pattern.size());
      if (largest_quantifier(pattern) > kMaxPatternCount)
        return fail(at, "pattern: a quantifier count above {} is not supported", kMaxPatternCount);
      return Status();
    }
    if (key == "multipleOf") {
      if (!s.contains("type") || s["type"] != "integer")
        return fail(at, "keyword \"multipleOf\" is supported for type integer only");
      if (!v.is_number_integer() || v.get<int64_t>() <= 0) return fail(at, "multipleOf: expected a positive integer");
      return Status();
    }
    if (key == "minimum" || key == "maximum" || key == "exclusiveMinimum" || key == "exclusiveMaximum") {
      if (!v.is_number()) return fail(at, "{}: expected a number", key);
      return Status();
    }
    // minLength, maxLength, minItems, maxItems, minProperties, maxProperties
    if (!v.is_number_integer() || v.get<int64_t>() < 0) return fail(at, "{}: expected a non-negative integer", key);
    return Status();
  }

  const std::string& where_;
};

}  // namespace

Status check_schema(const nlohmann::ordered_json& schema, const std::string& where) {
  return Checker(where).schema(schema, "", 0);
}

}  // namespace keel::grammar
