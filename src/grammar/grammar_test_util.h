// Test support for grammar/: the real tokenizers (the demo model's, Qwen3's 151k vocabulary from
// `make tokenizers`) and a nested 20-field schema with a document valid against it.
#pragma once

#include <map>
#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer.h"

namespace keel::grammar {

using json = nlohmann::ordered_json;

// Loaded once per process ("demo": models/demo; "qwen3": .npm-tokenizers/qwen3).
inline const tokenizer::Tokenizer* real_tokenizer(const std::string& name) {
  static std::map<std::string, std::unique_ptr<tokenizer::Tokenizer>> cache;
  if (auto it = cache.find(name); it != cache.end()) return it->second.get();
  const std::string dir = name == "demo" ? std::string(KEEL_SOURCE_DIR) + "/models/demo"
                                         : std::string(KEEL_SOURCE_DIR) + "/.npm-tokenizers/" + name + "/package/models";
  auto tok = tokenizer::Tokenizer::load(dir);
  if (!tok.ok()) {
    ADD_FAILURE() << tok.status().message() << " (run `make tokenizers`)";
    return nullptr;
  }
  return (cache[name] = std::make_unique<tokenizer::Tokenizer>(std::move(tok).value())).get();
}

// 20 fields, three levels deep: strings (bounded, enum, pattern, format), integers with ranges, numbers,
// booleans, a nullable union, arrays of strings and of objects, a $ref'd nested object.
inline json nested_20_field_schema() {
  return json::parse(R"({
    "type": "object",
    "$defs": {
      "address": {"type": "object", "properties": {
        "street": {"type": "string", "maxLength": 40},
        "city": {"type": "string", "maxLength": 30},
        "zip": {"type": "string", "pattern": "^[0-9]{5}$"},
        "country": {"type": "string", "enum": ["US", "DE", "FR", "JP"]}},
        "required": ["street", "city", "zip", "country"], "additionalProperties": false}
    },
    "properties": {
      "id": {"type": "integer", "minimum": 1, "maximum": 1000000},
      "name": {"type": "string", "minLength": 1, "maxLength": 32},
      "email": {"type": "string", "format": "email"},
      "age": {"type": "integer", "minimum": 0, "maximum": 150},
      "score": {"type": "number"},
      "active": {"type": "boolean"},
      "role": {"enum": ["admin", "user", "guest"]},
      "nickname": {"type": ["string", "null"], "maxLength": 16},
      "created": {"type": "string", "format": "date-time"},
      "tags": {"type": "array", "items": {"type": "string", "maxLength": 12}, "minItems": 1, "maxItems": 4},
      "home": {"$ref": "#/$defs/address"},
      "work": {"anyOf": [{"$ref": "#/$defs/address"}, {"type": "null"}]},
      "version": {"const": 2},
      "ratio": {"type": "number", "minimum": 0, "maximum": 1},
      "level": {"type": "integer", "minimum": 1, "maximum": 10},
      "verified": {"type": "boolean"},
      "history": {"type": "array", "maxItems": 3, "items": {"type": "object", "properties": {
          "at": {"type": "string", "format": "date"},
          "event": {"type": "string", "enum": ["login", "logout", "purchase"]},
          "amount": {"type": "number"}},
        "required": ["at", "event"], "additionalProperties": false}},
      "settings": {"type": "object", "properties": {
          "theme": {"enum": ["dark", "light"]},
          "notifications": {"type": "boolean"},
          "limits": {"type": "object", "properties": {
              "daily": {"type": "integer", "minimum": 0, "maximum": 100},
              "monthly": {"type": "integer", "minimum": 0, "maximum": 3000}},
            "required": ["daily", "monthly"], "additionalProperties": false}},
        "required": ["theme", "notifications", "limits"], "additionalProperties": false},
      "locale": {"type": "string", "pattern": "^[a-z]{2}-[A-Z]{2}$"},
      "notes": {"type": "string", "maxLength": 64}
    },
    "required": ["id", "name", "email", "age", "score", "active", "role", "nickname", "created", "tags", "home",
                 "work", "version", "ratio", "level", "verified", "history", "settings", "locale", "notes"],
    "additionalProperties": false
  })");
}

// The same without minLength / maxLength: bounded strings are what costs xgrammar compile time (docs/DECISIONS.md).
inline json without_length_bounds(json schema) {
  if (!schema.is_object()) return schema;
  schema.erase("minLength");
  schema.erase("maxLength");
  for (auto& [key, value] : schema.items()) {
    if (value.is_object()) value = without_length_bounds(value);
    if (value.is_array())
      for (json& item : value) item = without_length_bounds(item);
  }
  return schema;
}

// Valid against nested_20_field_schema(), written as the grammar writes JSON (", " and ": ", the schema's order).
inline std::string nested_20_field_document() {
  return R"({"id": 4711, "name": "Ada Lovelace", "email": "ada@example.org", "age": 36, "score": 98.5, )"
         R"("active": true, "role": "admin", "nickname": null, "created": "2024-03-01T12:30:00Z", )"
         R"("tags": ["math", "engines"], "home": {"street": "12 St James Square", "city": "London", "zip": )"
         R"("12345", "country": "FR"}, "work": null, "version": 2, "ratio": 0.25, "level": 7, "verified": false, )"
         R"("history": [{"at": "2024-01-02", "event": "login"}, {"at": "2024-01-03", "event": "purchase", )"
         R"("amount": 12.5}], "settings": {"theme": "dark", "notifications": true, "limits": {"daily": 10, )"
         R"("monthly": 300}}, "locale": "en-GB", "notes": "first programmer"})";
}

}  // namespace keel::grammar
