#include "server/request_fields.h"

#include <gtest/gtest.h>

#include <string>

namespace keel::server {
namespace {

TEST(Describe, ShortValuesPrintTheirTypeAndWholeText) {
  EXPECT_EQ(describe(json("hot")), "string \"hot\"");
  EXPECT_EQ(describe(json(1.5)), "number 1.5");
  EXPECT_EQ(describe(json::parse(R"({"a":[1,2],"b":null})")), R"(object {"a":[1,2],"b":null})");
  EXPECT_EQ(describe(json::array()), "array []");
}

TEST(Describe, LongValuesPrintAPrefixOfFortyCharacters) {
  EXPECT_EQ(describe(json(std::string(10 << 20, 'x'))), "string \"" + std::string(36, 'x') + "...");
  json wide = json::array();
  for (int i = 0; i < 100000; ++i) wide.push_back(i);
  EXPECT_EQ(describe(wide), "array [0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,1...");
}

TEST(Describe, APrefixNeverEndsInsideAUtf8Character) {
  // The quote and 35 ASCII bytes, then two-byte characters: the cut (byte 37) falls inside the first.
  const std::string d = describe(json(std::string(35, 'x') + "\u00e9\u00e9\u00e9\u00e9"));
  EXPECT_EQ(d, "string \"" + std::string(35, 'x') + "...");
  EXPECT_NO_THROW(json(d).dump());
}

TEST(Describe, AValueNested100kLevelsDeepIsDescribedWithoutRecursingIntoIt) {
  json deep = json::array();
  json* cur = &deep;
  for (int i = 0; i < 100000; ++i) {
    cur->push_back(json::object());
    cur = &cur->back();
    (*cur)["k"] = json::array();
    cur = &(*cur)["k"];
  }
  EXPECT_EQ(describe(deep), "array [{\"k\":[{\"k\":[{\"k\":[{\"k\":[{\"k\":[{\"k\":[...");
}

TEST(ParseRequestBody, RefusesNestingPastSixtyFourLevelsAndNonObjects) {
  std::string deep = R"({"stop":)" + std::string(100000, '[') + std::string(100000, ']') + "}";
  auto r = parse_request_body(deep);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "request body nests deeper than 64 levels");
  r = parse_request_body("[1,2]");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "request body: expected a JSON object, got array [1,2]");
  r = parse_request_body("{\"a\":");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().rfind("request body is not valid JSON: ", 0), 0u);
  r = parse_request_body(R"({"z":1,"a":2})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->dump(), R"({"z":1,"a":2})");  // key order kept (templates print tools in the client's order)
}

}  // namespace
}  // namespace keel::server
