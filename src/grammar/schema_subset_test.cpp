#include "grammar/schema_subset.h"

#include <gtest/gtest.h>

namespace keel::grammar {
namespace {

using json = nlohmann::ordered_json;

Status check(const char* schema) { return check_schema(json::parse(schema), "response_format.json_schema.schema"); }

TEST(SchemaSubset, TheSupportedKeywordsPass) {
  EXPECT_TRUE(check(R"({"type": "object", "title": "T", "description": "d", "$schema": "x", "x-order": 1,
      "properties": {"a": {"type": ["string", "null"], "minLength": 1, "maxLength": 3, "pattern": "^a+$"},
                     "b": {"type": "array", "items": {"$ref": "#/$defs/n"}, "prefixItems": [{"const": 1}],
                           "minItems": 1, "maxItems": 2},
                     "c": {"anyOf": [{"type": "integer", "multipleOf": 3, "minimum": 0}, {"enum": [1, "x"]}]},
                     "d": {"oneOf": [{"type": "boolean"}, {"type": "null"}]},
                     "e": {"type": "string", "format": "date-time"},
                     "f": {"type": "number", "exclusiveMinimum": 0, "maximum": 1.5}},
      "required": ["a"], "additionalProperties": false,
      "$defs": {"n": {"type": "number"}}})")
                  .ok());
  EXPECT_TRUE(check("true").ok());
  // Counts up to 128; braces escaped or in a class are not quantifiers.
  EXPECT_TRUE(check(R"({"type": "string", "pattern": "^a{128}b{0,128}c{128,}\\{999}[{999}]$"})").ok());
  EXPECT_TRUE(check(R"({"type": "object", "additionalProperties": {"type": "integer"}})").ok());
}

TEST(SchemaSubset, AnUnsupportedKeywordIsRefusedByNameWithWhereItIs) {
  struct Case {
    const char* schema;
    const char* says;
  };
  for (const Case& c : std::vector<Case>{
           {R"({"type": "array", "uniqueItems": true})", "keyword \"uniqueItems\" is not supported (at the schema's root)"},
           {R"({"properties": {"a": {"not": {"type": "null"}}}})", "keyword \"not\" is not supported (at /properties/a)"},
           {R"({"if": {}, "then": {}})", "keyword \"if\""},
           {R"({"type": "array", "contains": {"const": 1}})", "keyword \"contains\""},
           {R"({"dependentRequired": {"a": ["b"]}})", "keyword \"dependentRequired\""},
           {R"({"unevaluatedProperties": false})", "keyword \"unevaluatedProperties\""},
           {R"({"type": "string", "nullable": true})", "keyword \"nullable\""},
           {R"({"anyOf": [{"type": "string"}, {"type": "array", "items": {"minContains": 1}}]})",
            "keyword \"minContains\" is not supported (at /anyOf/1/items)"},
           {R"({"$defs": {"a/b": {"additionalItems": false}}})", "(at /$defs/a~1b)"},
           {R"({"type": "number", "multipleOf": 0.5})", "\"multipleOf\" is supported for type integer only"},
           {R"({"type": "string", "format": "phone"})", "format \"phone\" is not supported"},
           {R"({"type": "thing"})", "type: expected one of object"},
           {R"({"items": [{"type": "string"}]})", "items: an array of schemas is not supported; use prefixItems"},
           {R"({"$ref": "https://example.com/s.json"})", "$ref: only references inside the schema"},
           {R"({"properties": {"a": 3}})", "expected a schema"},
           {R"({"minLength": -1})", "minLength: expected a non-negative integer"},
           {R"({"type": "string", "pattern": "^a{129}$"})", "pattern: a quantifier count above 128 is not supported"},
           {R"({"type": "string", "pattern": "^(ab){2,1000}$"})", "a quantifier count above 128"},
           {R"({"type": "string", "pattern": "^x{0,99999999999999999999}$"})", "a quantifier count above 128"},
       }) {
    Status s = check(c.schema);
    ASSERT_FALSE(s.ok()) << c.schema;
    EXPECT_EQ(s.code(), Code::kInvalidArgument);
    EXPECT_NE(s.message().find("response_format.json_schema.schema: "), std::string::npos) << s.message();
    EXPECT_NE(s.message().find(c.says), std::string::npos) << s.message();
  }
}

}  // namespace
}  // namespace keel::grammar
