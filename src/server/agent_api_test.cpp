// What coding agents need from the HTTP API besides generation: their requests accepted as they are sent (Claude
// Code's fields, headers and query), tool history rendered, count_tokens, model aliases, keep-alive during a prefill.
#include <gtest/gtest.h>

#include "server/server_test_util.h"

namespace keel::server {
namespace {

using namespace http_test;
using nlohmann::json;

// A /v1/messages body shaped as Claude Code 2.1 sends it (captured from `claude -p`, trimmed): system blocks with
// cache_control and the billing header, a system-role entry in messages, adaptive thinking, effort, context
// management, metadata, and a second turn carrying tool_use / tool_result / thinking history.
json claude_code_body() {
  return json::parse(R"({
    "model": "test-model", "max_tokens": 128000, "stream": false,
    "metadata": {"user_id": "{\"device_id\":\"d\",\"session_id\":\"s\"}"},
    "thinking": {"type": "adaptive", "display": "omitted"},
    "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
    "output_config": {"effort": "medium"},
    "service_tier": "auto", "top_k": 40, "stop_sequences": ["\n\nHuman:"], "future_field": {"anything": [1]},
    "system": [{"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.337; cch=00000;"},
               {"type": "text", "text": "You are an agent.", "cache_control": {"type": "ephemeral"}}],
    "tools": [{"name": "Bash", "description": "Run a command", "input_schema": {"type": "object",
               "properties": {"command": {"type": "string"}}, "required": ["command"]}}],
    "messages": [
      {"role": "user", "content": [{"type": "text", "text": "<system-reminder>ctx</system-reminder>"},
                                   {"type": "text", "text": "List files.", "cache_control": {"type": "ephemeral"}}]},
      {"role": "system", "content": [{"type": "text", "text": "# Environment: linux"}]},
      {"role": "assistant", "content": [{"type": "thinking", "thinking": "I should run ls.", "signature": "sig"},
                                        {"type": "tool_use", "id": "toolu_01", "name": "Bash", "input": {"command": "ls"}}]},
      {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "README.md"}]}
    ]})");
}

TEST(AgentApi, ClaudeCodeRequestIsAcceptedWithItsHeadersQueryAndHistory) {
  TestServer s;
  auto c = s.client();
  httplib::Headers headers{{"anthropic-beta", "claude-code-20250219,interleaved-thinking-2025-05-14"},
                           {"anthropic-version", "2023-06-01"}, {"x-app", "cli"}};
  int status = 0;
  json j = json::parse(post_json(c, "/v1/messages?beta=true", claude_code_body(), &status, headers));
  ASSERT_EQ(status, 200) << j.dump();
  EXPECT_EQ(j["type"], "message");
  // The test template writes each message's role and content: the history reached it in order, converted.
  const std::string prompt = s.tokenizer().decode(s.generator.last().prompt, false);
  EXPECT_EQ(prompt,
            "<|im_start|>system\nYou are an agent.<|im_end|>\n"
            "<|im_start|>user\n<system-reminder>ctx</system-reminder>\n\nList files.<|im_end|>\n"
            "<|im_start|>system\n# Environment: linux<|im_end|>\n"
            "<|im_start|>assistant\n<|im_end|>\n"
            "<|im_start|>tool\nREADME.md<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(s.generator.last().sampling.top_k, 40);
}

TEST(AgentApi, OpenAIToolHistoryWithNullContentIsAccepted) {
  TestServer s;
  auto c = s.client();
  int status = 0;
  json messages = json::parse(R"([{"role":"developer","content":"Be brief."},{"role":"user","content":"weather?"},
    {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",
      "function":{"name":"get_weather","arguments":"{\"city\":\"Oslo\"}"}}]},
    {"role":"tool","tool_call_id":"call_1","content":[{"type":"text","text":"cold"}]}])");
  json j = json::parse(post_json(c, "/v1/chat/completions", chat_body({{"messages", messages}}), &status));
  ASSERT_EQ(status, 200) << j.dump();
  EXPECT_EQ(s.tokenizer().decode(s.generator.last().prompt, false),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nweather?<|im_end|>\n"
            "<|im_start|>assistant\n<|im_end|>\n<|im_start|>tool\ncold<|im_end|>\n<|im_start|>assistant\n");
}

TEST(AgentApi, ImagesAreRefusedWithA400NamingVision) {
  TestServer s;
  auto c = s.client();
  int status = 0;
  json body{{"max_tokens", 10},
            {"messages", json::parse(R"([{"role":"user","content":[{"type":"image","source":{"type":"base64",
               "media_type":"image/png","data":"AAAA"}}]}])")}};
  std::string out = post_json(c, "/v1/messages", body, &status);
  EXPECT_EQ(status, 400);
  expect_anthropic_error(out, "invalid_request_error");
  EXPECT_NE(json::parse(out)["error"]["message"].get<std::string>().find("no vision"), std::string::npos) << out;
  json chat = chat_body({{"messages", json::parse(R"([{"role":"user","content":[{"type":"image_url",
               "image_url":{"url":"https://x/y.png"}}]}])")}});
  out = post_json(c, "/v1/chat/completions", chat, &status);
  EXPECT_EQ(status, 400);
  expect_openai_error(out, "messages[0].content[0].type");
}

TEST(AgentApi, CountTokensEqualsTheInputTokensOfTheSameRequest) {
  TestServer s;
  auto c = s.client();
  int status = 0;
  json body = claude_code_body();
  json counted = json::parse(post_json(c, "/v1/messages/count_tokens?beta=true", body, &status));
  ASSERT_EQ(status, 200) << counted.dump();
  ASSERT_TRUE(counted["input_tokens"].is_number_integer()) << counted.dump();
  json answer = json::parse(post_json(c, "/v1/messages", body, &status));
  ASSERT_EQ(status, 200);
  EXPECT_EQ(counted["input_tokens"], answer["usage"]["input_tokens"]);
  EXPECT_EQ(counted["input_tokens"], s.generator.last().prompt.size());
  // count_tokens needs no max_tokens, and answers errors in the Anthropic shape.
  body.erase("max_tokens");
  EXPECT_EQ(json::parse(post_json(c, "/v1/messages/count_tokens", body, &status))["input_tokens"], counted["input_tokens"]);
  body["messages"] = "nope";
  expect_anthropic_error(post_json(c, "/v1/messages/count_tokens", body, &status), "invalid_request_error");
  EXPECT_EQ(status, 400);
}

TEST(AgentApi, EveryServedModelNameIsListedAndAccepted) {
  TestServer s({}, {"claude-opus-5-5", "gpt-5"});
  auto c = s.client();
  json list = json::parse(c.Get("/v1/models")->body);
  ASSERT_EQ(list["data"].size(), 3u);
  EXPECT_EQ(list["data"][0]["id"], "test-model");
  EXPECT_EQ(list["data"][1]["id"], "claude-opus-5-5");
  EXPECT_EQ(list["data"][2]["id"], "gpt-5");
  EXPECT_EQ(c.Get("/v1/models/gpt-5")->status, 200);
  int status = 0;
  json j = json::parse(post_json(c, "/v1/chat/completions", chat_body({{"model", "gpt-5"}}), &status));
  ASSERT_EQ(status, 200) << j.dump();
  EXPECT_EQ(j["model"], "gpt-5");
  j = json::parse(post_json(c, "/v1/messages",
                            {{"model", "claude-opus-5-5"}, {"max_tokens", 5}, {"messages", {{{"role", "user"}, {"content", "x"}}}}},
                            &status));
  ASSERT_EQ(status, 200) << j.dump();
  EXPECT_EQ(j["model"], "claude-opus-5-5");
  post_json(c, "/v1/chat/completions", chat_body({{"model", "gpt-4"}}), &status);
  EXPECT_EQ(status, 404);
}

TEST(AgentApi, ALongPrefillSendsKeepAliveCommentsThatClientsSkip) {
  ServerOptions options;
  options.sse_keepalive = std::chrono::milliseconds(100);
  TestServer s(options);
  s.generator.first_token_delay = std::chrono::milliseconds(450);
  auto c = s.client();
  auto res = c.Post("/v1/messages",
                    json{{"max_tokens", 3}, {"stream", true}, {"messages", {{{"role", "user"}, {"content", "x"}}}}}.dump(),
                    "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  // message_start goes out at once, then a comment every ~100 ms until the first token at ~450 ms.
  size_t comments = 0;
  for (size_t at = res->body.find(": keep-alive\n\n"); at != std::string::npos; at = res->body.find(": keep-alive\n\n", at + 1)) {
    ++comments;
  }
  EXPECT_GE(comments, 2u) << res->body;
  EXPECT_LE(comments, 6u) << res->body;
  EXPECT_LT(res->body.find(": keep-alive"), res->body.find("content_block_delta"));
  EXPECT_GT(res->body.find(": keep-alive"), res->body.find("message_start"));
  // Without a prefill to wait for, no comments.
  s.generator.first_token_delay = std::chrono::milliseconds(0);
  res = c.Post("/v1/chat/completions", chat_body({{"stream", true}}).dump(), "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body.find(": keep-alive"), std::string::npos);
}

}  // namespace
}  // namespace keel::server
