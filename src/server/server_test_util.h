// Helpers shared by the server's HTTP tests: SSE parsing, JSON posts, error-shape checks.
#pragma once

#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "server/test_server.h"

namespace keel::server::http_test {

using nlohmann::json;

struct SseEvent {
  std::string event;
  std::string data;
};

inline std::vector<SseEvent> parse_sse(const std::string& body) {
  std::vector<SseEvent> out;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t end = body.find("\n\n", pos);
    EXPECT_NE(end, std::string::npos) << "unterminated SSE event at " << pos << ": " << body.substr(pos);
    if (end == std::string::npos) break;
    std::string block = body.substr(pos, end - pos);
    pos = end + 2;
    SseEvent e;
    size_t line_start = 0;
    while (line_start <= block.size()) {
      size_t nl = block.find('\n', line_start);
      std::string line = block.substr(line_start, nl == std::string::npos ? std::string::npos : nl - line_start);
      if (line.rfind("event: ", 0) == 0) e.event = line.substr(7);
      if (line.rfind("data: ", 0) == 0) e.data = line.substr(6);
      if (nl == std::string::npos) break;
      line_start = nl + 1;
    }
    out.push_back(e);
  }
  return out;
}

inline std::string post_json(httplib::Client& c, const std::string& path, const json& body, int* status,
                      const httplib::Headers& headers = {}) {
  auto res = c.Post(path.c_str(), headers, body.dump(), "application/json");
  if (!res) {
    ADD_FAILURE() << "no response for " << path;
    *status = 0;
    return "";
  }
  *status = res->status;
  return res->body;
}

inline json chat_body(json extra = json::object()) {
  json body{{"model", "test-model"}, {"messages", {{{"role", "user"}, {"content", "Hi"}}}}};
  for (auto& [k, v] : extra.items()) body[k] = v;
  return body;
}

// Chat prompt ids under the test template: the rendered ChatML, byte per token plus special ids.
inline size_t chat_prompt_tokens(const TestServer& s, const std::string& user) {
  std::string text = "<|im_start|>user\n" + user + "<|im_end|>\n<|im_start|>assistant\n";
  return s.tokenizer().encode(text, false).size();
}

inline void expect_openai_error(const std::string& body, const std::string& param = "") {
  json j = json::parse(body, nullptr, false);
  ASSERT_TRUE(j.is_object()) << body;
  ASSERT_TRUE(j.contains("error")) << body;
  EXPECT_TRUE(j["error"]["message"].is_string()) << body;
  EXPECT_TRUE(j["error"]["type"].is_string()) << body;
  EXPECT_TRUE(j["error"].contains("param")) << body;
  EXPECT_TRUE(j["error"].contains("code")) << body;
  if (!param.empty()) {
    EXPECT_EQ(j["error"]["param"], param) << body;
  }
}

inline void expect_anthropic_error(const std::string& body, const std::string& type) {
  json j = json::parse(body, nullptr, false);
  ASSERT_TRUE(j.is_object()) << body;
  EXPECT_EQ(j["type"], "error") << body;
  EXPECT_EQ(j["error"]["type"], type) << body;
  EXPECT_TRUE(j["error"]["message"].is_string()) << body;
}

}  // namespace keel::server::http_test
