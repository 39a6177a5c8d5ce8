#include "base/json_parse.h"

#include <gtest/gtest.h>

#include <string>

namespace keel {
namespace {

std::string nested(int levels, char open = '[', char close = ']') {
  return std::string(static_cast<size_t>(levels), open) + std::string(static_cast<size_t>(levels), close);
}

TEST(ParseJsonBounded, AcceptsAValueNestedExactlyToTheLimit) {
  auto r = parse_json_bounded<nlohmann::ordered_json>(nested(64), 64, "request body");
  ASSERT_TRUE(r.ok()) << r.status().message();
  const nlohmann::ordered_json* v = &*r;
  int depth = 0;
  while (v->is_array()) {
    ++depth;
    if (v->empty()) break;
    v = &(*v)[0];
  }
  EXPECT_EQ(depth, 64);
}

TEST(ParseJsonBounded, RefusesOneLevelPastTheLimitNamingIt) {
  auto r = parse_json_bounded<nlohmann::ordered_json>(nested(65), 64, "request body");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "request body nests deeper than 64 levels");
}

TEST(ParseJsonBounded, RefusesAHundredThousandLevelsOfObjectsAndArraysWithoutRecursing) {
  std::string deep;
  for (int i = 0; i < 100000; ++i) deep += i % 2 ? "[" : "{\"a\":";
  auto r = parse_json_bounded<nlohmann::json>(deep, 64, "config.json");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "config.json nests deeper than 64 levels");
}

TEST(ParseJsonBounded, DepthCountsOpenLevelsNotTotalContainers) {
  std::string wide = "[";
  for (int i = 0; i < 10000; ++i) wide += std::string(i ? "," : "") + "[[1],{\"k\":[2]}]";
  wide += "]";
  auto r = parse_json_bounded<nlohmann::json>(wide, 4, "body");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->size(), 10000u);
}

TEST(ParseJsonBounded, InvalidJsonIsReportedWithTheParsersMessage) {
  for (const char* bad : {"", "{", "[1,]", "{\"a\":1} trailing", "nul"}) {
    auto r = parse_json_bounded<nlohmann::json>(bad, 64, "request body");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    EXPECT_EQ(r.status().message().rfind("request body is not valid JSON: ", 0), 0u) << r.status().message();
    EXPECT_NE(r.status().message().find("parse error"), std::string::npos) << r.status().message();
  }
}

TEST(ParseJsonBounded, KeepsObjectKeyOrderForOrderedJson) {
  auto r = parse_json_bounded<nlohmann::ordered_json>(R"({"z":1,"a":{"y":2,"b":3}})", 64, "body");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->dump(), R"({"z":1,"a":{"y":2,"b":3}})");
}

TEST(ParseJsonBounded, ARepeatedKeyKeepsItsFirstPlaceAndItsLastValueAsNlohmannDoes) {
  const char* text = R"({"a":1,"b":{"x":[1]},"a":{"y":2},"c":3,"b":4})";
  auto ordered = parse_json_bounded<nlohmann::ordered_json>(text, 64, "body");
  ASSERT_TRUE(ordered.ok());
  EXPECT_EQ(*ordered, nlohmann::ordered_json::parse(text));
  EXPECT_EQ(ordered->dump(), R"({"a":{"y":2},"b":4,"c":3})");
  auto sorted = parse_json_bounded<nlohmann::json>(text, 64, "body");
  ASSERT_TRUE(sorted.ok());
  EXPECT_EQ(*sorted, nlohmann::json::parse(text));
}

TEST(ParseJsonBounded, AnObjectOfTwoHundredThousandKeysKeepsEveryKeyInOrder) {
  // ordered_json's own parser finds each key by walking the ones before it (50k keys: 34 s); this one indexes.
  std::string text = "{";
  for (int i = 0; i < 200000; ++i) {
    if (i) text += ',';
    text += "\"k";
    text += std::to_string(i);
    text += "\":";
    text += std::to_string(i);
  }
  text += "}";
  auto r = parse_json_bounded<nlohmann::ordered_json>(text, 64, "body");
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 200000u);
  int expected = 0;
  for (const auto& [k, v] : r->items()) {
    ASSERT_EQ(k.substr(1), std::to_string(expected));
    ASSERT_EQ(v, expected);
    ++expected;
  }
}

TEST(ParseJsonBounded, ValuesOfEveryTypeMatchNlohmannsParser) {
  const char* text = R"({"s":"\u00e9\n","i":-3,"u":18446744073709551615,"f":1.5e-3,"t":true,"n":null,"a":[[],{}]})";
  auto r = parse_json_bounded<nlohmann::ordered_json>(text, 64, "body");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, nlohmann::ordered_json::parse(text));
  EXPECT_TRUE((*r)["u"].is_number_unsigned());
}

}  // namespace
}  // namespace keel
