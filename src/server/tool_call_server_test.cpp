// Tool calls and reasoning through the HTTP server: a FakeGenerator "generates" a Qwen3-style answer one byte per
// token (so every tag is split across tokens at every byte), and both APIs must answer with the calls, the
// reasoning and the text apart, streamed and not, with no markup in any of it.
#include <regex>

#include <gtest/gtest.h>

#include "server/anthropic.h"
#include "server/openai.h"
#include "server/server_test_util.h"

namespace keel::server {
namespace {

using namespace http_test;
using nlohmann::json;

const char* kQwen3Answer =
    "<think>\nThe user wants the weather.\n</think>\n\nLet me look that up.\n<tool_call>\n{\"name\": "
    "\"get_weather\", \"arguments\": {\"city\": \"Zürich \\\"Altstadt\\\"\"}}\n</tool_call>\n<tool_call>\n"
    "{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>";

json tools() {
  return json::parse(R"([
    {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
      "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}])");
}

json anthropic_tools() {
  return json::parse(R"([
    {"name": "get_weather", "description": "Weather in a city",
     "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
    {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}])");
}

json messages_body(json extra = json::object()) {
  json body{{"model", "test-model"}, {"max_tokens", 1000}, {"messages", {{{"role", "user"}, {"content", "Hi"}}}},
            {"tools", anthropic_tools()}};
  for (auto& [k, v] : extra.items()) body[k] = v;
  return body;
}

// Replaces call ids (checked against `pattern`) with "ID" so a whole answer can be compared exactly.
void replace_ids(json* j, const std::string& pattern) {
  if (j->is_object()) {
    for (auto& [k, v] : j->items()) {
      if (k == "id" && v.is_string() && std::regex_match(v.get<std::string>(), std::regex(pattern))) {
        v = "ID";
      } else {
        replace_ids(&v, pattern);
      }
    }
  } else if (j->is_array()) {
    for (json& v : *j) replace_ids(&v, pattern);
  }
}

const std::string kCallId = "call_[A-Za-z0-9]{24}";
const std::string kToolUseId = "toolu_[A-Za-z0-9]{24}";

TEST(ToolCalls, OpenAiMessageCarriesReasoningTextAndCalls) {
  TestServer s;
  s.generator.script = kQwen3Answer;
  auto c = s.client();
  int status = 0;
  json j = json::parse(post_json(c, "/v1/chat/completions", chat_body({{"tools", tools()}}), &status));
  ASSERT_EQ(status, 200) << j.dump();
  json choice = j["choices"][0];
  replace_ids(&choice, kCallId);
  EXPECT_EQ(choice, json::parse(R"({"index": 0, "message": {"role": "assistant", "content": "Let me look that up.",
    "reasoning_content": "The user wants the weather.", "tool_calls": [
      {"id": "ID", "type": "function", "function": {"name": "get_weather",
                                                   "arguments": "{\"city\": \"Zürich \\\"Altstadt\\\"\"}"}},
      {"id": "ID", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]},
    "logprobs": null, "finish_reason": "tool_calls"})"));
  EXPECT_NE(j["choices"][0]["message"]["tool_calls"][0]["id"], j["choices"][0]["message"]["tool_calls"][1]["id"]);
}

TEST(ToolCalls, OpenAiStreamSendsIdAndNameOnceThenArgumentPieces) {
  TestServer s;
  s.generator.script = kQwen3Answer;
  auto c = s.client();
  int status = 0;
  std::string body = post_json(c, "/v1/chat/completions", chat_body({{"tools", tools()}, {"stream", true}}), &status);
  ASSERT_EQ(status, 200) << body;
  auto events = parse_sse(body);
  ASSERT_EQ(events.back().data, "[DONE]");
  std::string content, reasoning, finish;
  std::vector<json> calls;  // accumulated per index
  for (size_t i = 1; i + 1 < events.size(); ++i) {
    json chunk = json::parse(events[i].data);
    const json& choice = chunk["choices"][0];
    if (!choice["finish_reason"].is_null()) finish = choice["finish_reason"];
    const json& delta = choice["delta"];
    EXPECT_LE(delta.size(), 1u) << delta.dump();  // one kind of delta per chunk
    if (delta.contains("content")) content += delta["content"].get<std::string>();
    if (delta.contains("reasoning_content")) reasoning += delta["reasoning_content"].get<std::string>();
    if (!delta.contains("tool_calls")) continue;
    ASSERT_EQ(delta["tool_calls"].size(), 1u);
    const json& tc = delta["tool_calls"][0];
    size_t index = tc["index"].get<size_t>();
    if (index == calls.size()) {
      // A call's first delta: id, type and name, arguments empty.
      EXPECT_TRUE(std::regex_match(tc["id"].get<std::string>(), std::regex(kCallId))) << tc.dump();
      EXPECT_EQ(tc["type"], "function");
      EXPECT_EQ(tc["function"]["arguments"], "");
      calls.push_back(tc);
    } else {
      ASSERT_EQ(index + 1, calls.size()) << "arguments for a call that is not the latest";
      EXPECT_FALSE(tc.contains("id"));
      EXPECT_FALSE(tc["function"].contains("name"));
      calls[index]["function"]["arguments"] =
          calls[index]["function"]["arguments"].get<std::string>() + tc["function"]["arguments"].get<std::string>();
    }
  }
  EXPECT_EQ(reasoning, "The user wants the weather.");
  EXPECT_EQ(content, "Let me look that up.");
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0]["function"]["name"], "get_weather");
  EXPECT_EQ(calls[0]["function"]["arguments"], "{\"city\": \"Zürich \\\"Altstadt\\\"\"}");
  EXPECT_EQ(calls[1]["function"]["name"], "get_time");
  EXPECT_EQ(calls[1]["function"]["arguments"], "{}");
  EXPECT_EQ(finish, "tool_calls");
  EXPECT_EQ(body.find("tool_call>"), std::string::npos) << "markup leaked";
  EXPECT_EQ(body.find("think>"), std::string::npos) << "markup leaked";
}

TEST(ToolCalls, ToolChoiceNoneAndNoToolsLeaveTheMarkupAsText) {
  TestServer s;
  s.generator.script = "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>";
  auto c = s.client();
  int status = 0;
  for (json extra : {json{{"tools", tools()}, {"tool_choice", "none"}}, json::object()}) {
    json j = json::parse(post_json(c, "/v1/chat/completions", chat_body(extra), &status));
    ASSERT_EQ(status, 200) << j.dump();
    EXPECT_EQ(j["choices"][0]["message"]["content"], s.generator.script);
    EXPECT_FALSE(j["choices"][0]["message"].contains("tool_calls"));
    EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  }
}

TEST(ToolCalls, ParallelFalseStopsGeneratingAfterTheFirstCall) {
  TestServer s;
  s.generator.script = kQwen3Answer;
  auto c = s.client();
  int status = 0;
  json j = json::parse(post_json(c, "/v1/chat/completions",
                                 chat_body({{"tools", tools()}, {"parallel_tool_calls", false}}), &status));
  ASSERT_EQ(status, 200) << j.dump();
  ASSERT_EQ(j["choices"][0]["message"]["tool_calls"].size(), 1u);
  EXPECT_EQ(j["choices"][0]["message"]["tool_calls"][0]["function"]["name"], "get_weather");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "tool_calls");
  // Generation stopped at the first call's closing brace, not at the end of the script.
  const std::string first_call_end = "Altstadt\\\"\"}}";
  const size_t stop_at = std::string(kQwen3Answer).find(first_call_end) + first_call_end.size();
  EXPECT_EQ(j["usage"]["completion_tokens"], stop_at);
  EXPECT_EQ(s.generator.cancel_count(), 1u);
}

TEST(ToolCalls, ReasoningWithoutToolsIsReasoningContent) {
  TestServer s;
  s.generator.script = "<think>\nJust greet.\n</think>\n\nHello!";
  auto c = s.client();
  int status = 0;
  json j = json::parse(post_json(c, "/v1/chat/completions", chat_body(), &status));
  ASSERT_EQ(status, 200) << j.dump();
  EXPECT_EQ(j["choices"][0]["message"], json::parse(R"({"role": "assistant", "content": "Hello!",
                                                         "reasoning_content": "Just greet."})"));
}

TEST(ToolCalls, AnthropicMessageHasThinkingTextAndToolUseBlocks) {
  TestServer s;
  s.generator.script = kQwen3Answer;
  auto c = s.client();
  int status = 0;
  json j = json::parse(post_json(c, "/v1/messages", messages_body(), &status));
  ASSERT_EQ(status, 200) << j.dump();
  json content = j["content"];
  replace_ids(&content, kToolUseId);
  EXPECT_EQ(content, json::parse(R"([
    {"type": "thinking", "thinking": "The user wants the weather.", "signature": ""},
    {"type": "text", "text": "Let me look that up."},
    {"type": "tool_use", "id": "ID", "name": "get_weather", "input": {"city": "Zürich \"Altstadt\""}},
    {"type": "tool_use", "id": "ID", "name": "get_time", "input": {}}])"));
  EXPECT_EQ(j["stop_reason"], "tool_use");
}

TEST(ToolCalls, AnthropicStreamOpensOneBlockPerKindWithCountingIndexes) {
  TestServer s;
  s.generator.script = kQwen3Answer;
  auto c = s.client();
  int status = 0;
  std::string out = post_json(c, "/v1/messages", messages_body({{"stream", true}}), &status);
  ASSERT_EQ(status, 200) << out;
  std::vector<std::string> sequence;  // event names with block types, consecutive deltas collapsed
  std::vector<std::string> block_text(4);
  int open = -1;
  for (const auto& e : parse_sse(out)) {
    json d = json::parse(e.data);
    EXPECT_EQ(d["type"], e.event);
    std::string step = e.event;
    if (e.event == "content_block_start") {
      EXPECT_EQ(d["index"], open + 1) << "indexes count up from 0";
      open = d["index"];
      step += ":" + d["content_block"]["type"].get<std::string>();
      if (d["content_block"]["type"] == "tool_use") {
        EXPECT_TRUE(std::regex_match(d["content_block"]["id"].get<std::string>(), std::regex(kToolUseId)));
        EXPECT_EQ(d["content_block"]["input"], json::object());
        block_text[open] = d["content_block"]["name"].get<std::string>() + " ";
      }
    } else if (e.event == "content_block_delta") {
      EXPECT_EQ(d["index"], open);
      const json& delta = d["delta"];
      step += ":" + delta["type"].get<std::string>();
      for (const char* field : {"thinking", "text", "partial_json"}) {
        if (delta.contains(field)) block_text[open] += delta[field].get<std::string>();
      }
    } else if (e.event == "content_block_stop") {
      EXPECT_EQ(d["index"], open);
    } else if (e.event == "message_delta") {
      EXPECT_EQ(d["delta"]["stop_reason"], "tool_use");
    }
    if (sequence.empty() || sequence.back() != step) sequence.push_back(step);
  }
  EXPECT_EQ(sequence, (std::vector<std::string>{
                          "message_start", "content_block_start:thinking", "ping", "content_block_delta:thinking_delta",
                          "content_block_stop", "content_block_start:text", "content_block_delta:text_delta",
                          "content_block_stop", "content_block_start:tool_use", "content_block_delta:input_json_delta",
                          "content_block_stop", "content_block_start:tool_use", "content_block_delta:input_json_delta",
                          "content_block_stop", "message_delta", "message_stop"}));
  EXPECT_EQ(block_text, (std::vector<std::string>{"The user wants the weather.", "Let me look that up.",
                                                  "get_weather {\"city\": \"Zürich \\\"Altstadt\\\"\"}",
                                                  "get_time {}"}));
}

TEST(ToolCalls, AnthropicDisableParallelToolUseKeepsOneCall) {
  TestServer s;
  s.generator.script = kQwen3Answer;
  auto c = s.client();
  int status = 0;
  json j = json::parse(post_json(
      c, "/v1/messages", messages_body({{"tool_choice", {{"type", "auto"}, {"disable_parallel_tool_use", true}}}}),
      &status));
  ASSERT_EQ(status, 200) << j.dump();
  ASSERT_EQ(j["content"].size(), 3u) << j.dump();
  EXPECT_EQ(j["content"][2]["name"], "get_weather");
  EXPECT_EQ(j["stop_reason"], "tool_use");
}

TEST(ToolCalls, BadToolChoiceIsA400NamingTheField) {
  TestServer s;
  auto c = s.client();
  int status = 0;
  const std::vector<std::pair<json, std::string>> openai = {
      {json{{"tools", tools()}, {"tool_choice", "sometimes"}}, "tool_choice"},
      {json{{"tools", tools()}, {"tool_choice", {{"type", "function"}, {"function", {{"name", "nope"}}}}}},
       "tool_choice.function.name"},
      {json{{"tool_choice", "required"}}, "tool_choice"},
      {json{{"tools", tools()}, {"parallel_tool_calls", "yes"}}, "parallel_tool_calls"},
  };
  for (const auto& [extra, param] : openai) {
    std::string body = post_json(c, "/v1/chat/completions", chat_body(extra), &status);
    EXPECT_EQ(status, 400) << body;
    expect_openai_error(body, param);
  }
  for (json choice : {json{{"type", "maybe"}}, json{{"type", "tool"}, {"name", "nope"}}, json("auto"),
                      json{{"type", "auto"}, {"disable_parallel_tool_use", 1}}}) {
    std::string body = post_json(c, "/v1/messages", messages_body({{"tool_choice", choice}}), &status);
    EXPECT_EQ(status, 400) << body;
    expect_anthropic_error(body, "invalid_request_error");
    EXPECT_NE(body.find("tool_choice"), std::string::npos) << body;
  }
}

TEST(ToolCalls, RequiredAndNamedChoicesReachTheSpec) {
  auto spec = parse_chat_request(chat_body({{"tools", tools()}, {"tool_choice", "required"}}));
  ASSERT_TRUE(spec.ok()) << spec.status().message();
  EXPECT_EQ(spec->tool_choice.mode, ToolChoice::Mode::kRequired);
  spec = parse_chat_request(chat_body({{"tools", tools()},
                                       {"tool_choice", {{"type", "function"}, {"function", {{"name", "get_time"}}}}},
                                       {"parallel_tool_calls", false}}));
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ(spec->tool_choice.mode, ToolChoice::Mode::kNamed);
  EXPECT_EQ(spec->tool_choice.name, "get_time");
  EXPECT_FALSE(spec->parallel_tool_calls);
  auto msg = parse_messages_request(messages_body({{"tool_choice", {{"type", "any"}}}}));
  ASSERT_TRUE(msg.ok()) << msg.status().message();
  EXPECT_EQ(msg->tool_choice.mode, ToolChoice::Mode::kRequired);
}

}  // namespace
}  // namespace keel::server
