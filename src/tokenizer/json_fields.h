// Typed access to tokenizer.json fields: a missing or mistyped field is an error naming its path
// ("normalizer.normalizers[1].content: expected a string, got number").
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "base/status.h"

namespace keel::tokenizer {

using Json = nlohmann::json;

inline std::string field_path(const std::string& where, const char* key) {
  return where.empty() ? std::string(key) : where + "." + key;
}

inline Result<const Json*> get_field(const Json& obj, const char* key, const std::string& where) {
  if (!obj.is_object()) return corruption("{}: expected an object, got {}", where, obj.type_name());
  auto it = obj.find(key);
  if (it == obj.end()) return corruption("{}: missing", field_path(where, key));
  return &*it;
}

inline Result<std::string> get_string(const Json& obj, const char* key, const std::string& where) {
  KEEL_ASSIGN_OR_RETURN(const Json* v, get_field(obj, key, where));
  if (!v->is_string()) return corruption("{}: expected a string, got {}", field_path(where, key), v->type_name());
  return v->get<std::string>();
}

// A boolean that may be absent (HF fills in defaults for older files).
inline Result<bool> get_bool_or(const Json& obj, const char* key, bool fallback, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) return corruption("{}: expected a boolean, got {}", field_path(where, key), it->type_name());
  return it->get<bool>();
}

inline Result<int64_t> get_int_or(const Json& obj, const char* key, int64_t fallback, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  if (!it->is_number_integer()) {
    return corruption("{}: expected an integer, got {}", field_path(where, key), it->type_name());
  }
  return it->get<int64_t>();
}

// An optional string: absent or null gives "".
inline Result<std::string> get_string_or(const Json& obj, const char* key, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::string();
  if (!it->is_string()) return corruption("{}: expected a string, got {}", field_path(where, key), it->type_name());
  return it->get<std::string>();
}

}  // namespace keel::tokenizer
