// A request body's nesting is bounded before anything walks it: a value 100k levels deep in any field is a 400
// naming the limit, in the route's error shape, and the server answers the next request. (Before the bound, each
// of these bodies overflowed the stack of the server: describe() dumped the value, copies and the template's
// Value::from_json recursed.)
#include <gtest/gtest.h>

#include <string>

#include "server/test_server.h"

namespace keel::server {
namespace {

using nlohmann::json;

constexpr int kDeep = 100000;  // ~200 KB of brackets; 1-2 MB bodies of this shape crashed the server

// `levels` nested arrays around a string, as text: building it as a json value would itself recurse.
std::string nested_array(int levels) {
  return std::string(static_cast<size_t>(levels), '[') + "\"x\"" + std::string(static_cast<size_t>(levels), ']');
}

// Objects and arrays alternating, as an extra message field from a hostile client would nest.
std::string nested_mixed(int levels) {
  std::string open, close;
  for (int i = 0; i < levels; ++i) {
    open += i % 2 ? "[" : "{\"k\":";
    close += i % 2 ? "]" : "}";
  }
  std::string closing(close.rbegin(), close.rend());
  return open + "1" + closing;
}

const char* kUser = R"({"role":"user","content":"Hi"})";

struct Case {
  const char* path;
  std::string body;
};

std::vector<Case> deep_cases(int levels) {
  std::string deep = nested_array(levels);
  std::string mixed = nested_mixed(levels);
  std::string chat_head = std::string(R"({"model":"test-model","messages":[)") + kUser + "]";
  return {
      {"/v1/chat/completions", chat_head + R"(,"stop":)" + deep + "}"},
      {"/v1/completions", R"({"model":"test-model","prompt":)" + deep + "}"},
      {"/v1/chat/completions", chat_head + R"(,"chat_template_kwargs":{"x":)" + mixed + "}}"},
      {"/v1/chat/completions",
       R"({"model":"test-model","messages":[{"role":"user","content":"Hi","extra":)" + mixed + "}]}"},
      {"/v1/messages", R"({"model":"test-model","max_tokens":4,"messages":[)" + std::string(kUser) +
                           R"(],"stop_sequences":)" + deep + "}"},
      {"/v1/messages", R"({"model":"test-model","max_tokens":4,"messages":[)" + std::string(kUser) +
                           R"(],"metadata":{"m":)" + mixed + "}}"},
      {"/tokenize", R"({"model":"test-model","prompt":)" + deep + "}"},
      {"/tokenize",
       R"({"model":"test-model","messages":[{"role":"user","content":"Hi","extra":)" + mixed + "}]}"},
      {"/detokenize", R"({"model":"test-model","tokens":)" + deep + "}"},
      {"/v1/chat/completions", deep},
  };
}

std::string error_message(const std::string& path, const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (!j.is_object() || !j.contains("error") || !j["error"].is_object()) return "not a JSON error: " + body;
  if (path == "/v1/messages") {
    if (j.value("type", "") != "error" || j["error"].value("type", "") != "invalid_request_error") {
      return "not an Anthropic invalid_request_error: " + body;
    }
  } else if (j["error"].value("type", "") != "invalid_request_error" || !j["error"].contains("param")) {
    return "not an OpenAI invalid_request_error: " + body;
  }
  return j["error"].value("message", "");
}

TEST(NestedBody, AHundredThousandLevelsInAnyFieldIsA400NamingTheLimit) {
  TestServer s;
  auto c = s.client();
  for (const Case& k : deep_cases(kDeep)) {
    auto res = c.Post(k.path, k.body, "application/json");
    ASSERT_TRUE(res) << "no answer (did the server die?) for " << k.path << " " << k.body.substr(0, 120);
    EXPECT_EQ(res->status, 400) << k.path << " " << k.body.substr(0, 120);
    EXPECT_EQ(error_message(k.path, res->body), "request body nests deeper than 64 levels")
        << k.path << " " << k.body.substr(0, 120);
  }
  auto res = c.Post("/v1/chat/completions", R"({"model":"test-model","messages":[{"role":"user","content":"Hi"}]})",
                    "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(s.server().in_flight(), 0);
}

TEST(NestedBody, SixtyFourLevelsAreServedAndSixtyFiveAreRefused) {
  TestServer s;
  auto c = s.client();
  // The body is level 1 and chat_template_kwargs level 2: 62 arrays inside reach exactly 64.
  auto body = [](int arrays) {
    return std::string(R"({"model":"test-model","messages":[)") + kUser + R"(],"chat_template_kwargs":{"x":)" +
           nested_array(arrays) + "}}";
  };
  auto res = c.Post("/v1/chat/completions", body(62), "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
  res = c.Post("/v1/chat/completions", body(63), "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_EQ(error_message("/v1/chat/completions", res->body), "request body nests deeper than 64 levels");
}

}  // namespace
}  // namespace keel::server
