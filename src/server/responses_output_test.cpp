// /v1/responses output items from a reasoning, tool-calling answer (the fake generator writes it a byte per token,
// so every tag is split at every byte): reasoning, message and function_call items whose content is what the chat
// route's output parser reads from the same answer, whole and streamed, and a call's output sent back.
#include <gtest/gtest.h>

#include <map>

#include "server/server_test_util.h"

namespace keel::server {
namespace {

using namespace http_test;
using nlohmann::json;

const char* kAnswer =
    "<think>\nThe user wants the weather.\n</think>\n\nLet me look that up.\n<tool_call>\n{\"name\": "
    "\"get_weather\", \"arguments\": {\"city\": \"Z\xC3\xBCrich\"}}\n</tool_call>\n<tool_call>\n"
    "{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>";

json response_tools() {
  return json::parse(R"([
    {"type": "function", "name": "get_weather", "description": "Weather in a city", "strict": true,
     "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
    {"type": "namespace", "name": "clock", "description": "Time tools",
     "tools": [{"type": "function", "name": "get_time", "parameters": {"type": "object", "properties": {}}}]}])");
}

json chat_tools() {
  return json::parse(R"([
    {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
      "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}])");
}

json post(TestServer& s, const std::string& path, const json& body) {
  auto c = s.client();
  int status = 0;
  std::string out = post_json(c, path, body, &status);
  EXPECT_EQ(status, 200) << out;
  return json::parse(out, nullptr, false);
}

TEST(ResponsesOutput, ReasoningTextAndCallsBecomeItemsInTheOrderWritten) {
  TestServer s;
  s.generator.script = kAnswer;
  json chat = post(s, "/v1/chat/completions", chat_body({{"tools", chat_tools()}}));
  const json& message = chat["choices"][0]["message"];
  ASSERT_EQ(message["tool_calls"].size(), 2u) << chat.dump();

  json r = post(s, "/v1/responses", {{"input", "Weather?"}, {"tools", response_tools()}});
  ASSERT_EQ(r["output"].size(), 4u) << r.dump(2);
  const json& reasoning = r["output"][0];
  EXPECT_EQ(reasoning["type"], "reasoning");
  EXPECT_EQ(reasoning["id"].get<std::string>().rfind("rs_", 0), 0u);
  EXPECT_EQ(reasoning["content"][0]["type"], "reasoning_text");
  EXPECT_EQ(reasoning["content"][0]["text"], message["reasoning_content"]);
  EXPECT_EQ(reasoning["summary"], json::array());  // not asked for
  EXPECT_EQ(r["output"][1]["type"], "message");
  EXPECT_EQ(r["output"][1]["content"][0]["text"], message["content"]);
  for (int i = 0; i < 2; i++) {
    const json& call = r["output"][2 + i];
    const json& want = message["tool_calls"][i];
    EXPECT_EQ(call["type"], "function_call");
    EXPECT_EQ(call["status"], "completed");
    EXPECT_EQ(call["id"].get<std::string>().rfind("fc_", 0), 0u);
    EXPECT_EQ(call["call_id"].get<std::string>().rfind("call_", 0), 0u);
    EXPECT_EQ(call["name"], want["function"]["name"]);
    EXPECT_EQ(call["arguments"], want["function"]["arguments"]);
  }
  EXPECT_FALSE(r["output"][2].contains("namespace"));
  EXPECT_EQ(r["output"][3]["namespace"], "clock");  // get_time came from the clock namespace
  EXPECT_EQ(json::parse(r["output"][2]["arguments"].get<std::string>()), json({{"city", "Z\xC3\xBCrich"}}));
  EXPECT_GT(r["usage"]["output_tokens_details"]["reasoning_tokens"], 0);
  EXPECT_EQ(r["status"], "completed");
}

TEST(ResponsesOutput, TheStreamOpensAndClosesEachItemAndItsDeltasAddUpToIt) {
  TestServer s;
  s.generator.script = kAnswer;
  auto c = s.client();
  int status = 0;
  std::string out = post_json(c, "/v1/responses",
                              {{"input", "Weather?"}, {"tools", response_tools()}, {"stream", true},
                               {"reasoning", {{"summary", "auto"}}}},
                              &status);
  ASSERT_EQ(status, 200);
  std::vector<SseEvent> events = parse_sse(out);
  std::vector<std::string> types;
  std::map<int, std::string> deltas;  // by output_index: text, reasoning or arguments
  std::map<int, json> done;
  json completed;
  int open = -1;
  for (size_t i = 0; i < events.size(); i++) {
    json e = json::parse(events[i].data);
    ASSERT_EQ(e["sequence_number"], i);
    const std::string type = e["type"];
    if (types.empty() || types.back() != type) types.push_back(type);
    if (type == "response.output_item.added") {
      EXPECT_EQ(e["output_index"], open + 1) << "items open one at a time, in order";
      open = e["output_index"];
      EXPECT_EQ(e["item"]["status"], "in_progress");
    }
    if (type.size() > 6 && type.substr(type.size() - 6) == ".delta" && type.find("summary") == std::string::npos) {
      EXPECT_EQ(e["output_index"], open);
      deltas[e["output_index"]] += e["delta"].get<std::string>();
    }
    if (type == "response.output_item.done") done[e["output_index"]] = e["item"];
    if (type == "response.completed") completed = e["response"];
  }
  const std::vector<std::string> expected = {
      "response.created", "response.in_progress",
      "response.output_item.added", "response.reasoning_text.delta", "response.reasoning_text.done",
      "response.reasoning_summary_part.added", "response.reasoning_summary_text.delta",
      "response.reasoning_summary_text.done", "response.reasoning_summary_part.done", "response.output_item.done",
      "response.output_item.added", "response.content_part.added", "response.output_text.delta",
      "response.output_text.done", "response.content_part.done", "response.output_item.done",
      "response.output_item.added", "response.function_call_arguments.delta",
      "response.function_call_arguments.done", "response.output_item.done",
      "response.output_item.added", "response.function_call_arguments.delta",
      "response.function_call_arguments.done", "response.output_item.done", "response.completed"};
  EXPECT_EQ(types, expected);
  ASSERT_TRUE(completed.is_object());
  ASSERT_EQ(completed["output"].size(), 4u);
  for (int i = 0; i < 4; i++) EXPECT_EQ(done[i], completed["output"][i]) << i;
  EXPECT_EQ(deltas[0], completed["output"][0]["content"][0]["text"]);
  EXPECT_EQ(completed["output"][0]["summary"][0]["text"], completed["output"][0]["content"][0]["text"]);
  EXPECT_EQ(deltas[1], completed["output"][1]["content"][0]["text"]);
  EXPECT_EQ(deltas[2], completed["output"][2]["arguments"]);
  EXPECT_EQ(deltas[3], completed["output"][3]["arguments"]);
}

TEST(ResponsesOutput, ParallelToolCallsFalseStopsAfterTheFirstCall) {
  TestServer s;
  s.generator.script = kAnswer;
  json r = post(s, "/v1/responses", {{"input", "Weather?"}, {"tools", response_tools()},
                                     {"parallel_tool_calls", false}});
  ASSERT_EQ(r["output"].size(), 3u) << r.dump(2);
  EXPECT_EQ(r["output"][2]["name"], "get_weather");
  EXPECT_EQ(r["parallel_tool_calls"], false);
}

TEST(ResponsesOutput, ToolChoiceNoneHidesTheToolsAndLeavesTheMarkupAsText) {
  TestServer s;
  s.generator.script = "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>";
  json r = post(s, "/v1/responses", {{"input", "Time?"}, {"tools", response_tools()}, {"tool_choice", "none"}});
  ASSERT_EQ(r["output"].size(), 1u) << r.dump(2);
  EXPECT_EQ(r["output"][0]["type"], "message");
  EXPECT_EQ(r["output"][0]["content"][0]["text"], s.generator.script);
}

// A call's output goes back through previous_response_id: the stored conversation holds the call, this request
// adds its output, and the template sees the assistant's call turn then the tool's answer.
TEST(ResponsesOutput, AFunctionCallOutputContinuesTheStoredCall) {
  TestServer s;
  s.generator.script = "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>";
  json first = post(s, "/v1/responses", {{"input", "Time?"}, {"tools", response_tools()}});
  ASSERT_EQ(first["output"].size(), 1u) << first.dump(2);
  const std::string call_id = first["output"][0]["call_id"];
  s.generator.script = "It is noon.";
  json second = post(s, "/v1/responses",
                     {{"previous_response_id", first["id"]}, {"tools", response_tools()},
                      {"input", {{{"type", "function_call_output"}, {"call_id", call_id}, {"output", "12:00"}}}}});
  EXPECT_EQ(second["output"][0]["content"][0]["text"], "It is noon.");
  const std::string prompt = s.tokenizer().decode(s.generator.last().prompt, false);
  EXPECT_NE(prompt.find("<|im_start|>user\nTime?<|im_end|>\n<|im_start|>assistant\n<|im_end|>\n"
                        "<|im_start|>tool\n12:00<|im_end|>\n<|im_start|>assistant\n"),
            std::string::npos)
      << prompt;
}

}  // namespace
}  // namespace keel::server
