// /v1/responses against the fake generator: the response object, the event sequence a stream sends, input items
// as the template sees them, previous_response_id continuation and the store's GET and DELETE.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "server/server_test_util.h"

namespace keel::server {
namespace {

using namespace http_test;
using nlohmann::json;

json post(TestServer& s, const json& body, int* status) {
  auto c = s.client();
  std::string out = post_json(c, "/v1/responses", body, status);
  json j = json::parse(out, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << out;
  return j;
}

// The prompt the generator received, as text.
std::string prompt_text(TestServer& s) { return s.tokenizer().decode(s.generator.last().prompt, false); }

TEST(Responses, AStringInputGivesAResponseObjectWithOneMessage) {
  TestServer s;
  int status = 0;
  json r = post(s, {{"model", "test-model"}, {"input", "Hi"}, {"instructions", "Be brief."},
                    {"metadata", {{"k", "v"}}}, {"temperature", 0}}, &status);
  ASSERT_EQ(status, 200) << r.dump();
  EXPECT_EQ(r["object"], "response");
  EXPECT_EQ(r["id"].get<std::string>().rfind("resp_", 0), 0u);
  EXPECT_EQ(r["status"], "completed");
  EXPECT_TRUE(r["incomplete_details"].is_null());
  EXPECT_TRUE(r["error"].is_null());
  EXPECT_EQ(r["model"], "test-model");
  EXPECT_EQ(r["instructions"], "Be brief.");
  EXPECT_EQ(r["metadata"], json({{"k", "v"}}));
  EXPECT_EQ(r["temperature"], 0.0);
  EXPECT_TRUE(r["created_at"].is_number_integer());
  ASSERT_EQ(r["output"].size(), 1u);
  const json& msg = r["output"][0];
  EXPECT_EQ(msg["type"], "message");
  EXPECT_EQ(msg["role"], "assistant");
  EXPECT_EQ(msg["status"], "completed");
  EXPECT_EQ(msg["id"].get<std::string>().rfind("msg_", 0), 0u);
  ASSERT_EQ(msg["content"].size(), 1u);
  EXPECT_EQ(msg["content"][0]["type"], "output_text");
  EXPECT_EQ(msg["content"][0]["text"], s.generator.script);
  EXPECT_EQ(msg["content"][0]["annotations"], json::array());
  // instructions are the system message.
  const std::string expected = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                               "<|im_start|>assistant\n";
  EXPECT_EQ(prompt_text(s), expected);
  const int input = static_cast<int>(s.tokenizer().encode(expected, false).size());
  EXPECT_EQ(r["usage"]["input_tokens"], input);
  EXPECT_EQ(r["usage"]["output_tokens"], s.generator.script.size() + 1);
  EXPECT_EQ(r["usage"]["total_tokens"], input + s.generator.script.size() + 1);
  EXPECT_EQ(r["usage"]["input_tokens_details"]["cached_tokens"], 0);
  EXPECT_EQ(r["usage"]["output_tokens_details"]["reasoning_tokens"], 0);
}

TEST(Responses, MaxOutputTokensEndsIncompleteWithTheReason) {
  TestServer s;
  int status = 0;
  json r = post(s, {{"input", "Hi"}, {"max_output_tokens", 4}}, &status);
  ASSERT_EQ(status, 200) << r.dump();
  EXPECT_EQ(r["status"], "incomplete");
  EXPECT_EQ(r["incomplete_details"], json({{"reason", "max_output_tokens"}}));
  EXPECT_EQ(r["output"][0]["status"], "incomplete");
  EXPECT_EQ(r["output"][0]["content"][0]["text"], s.generator.script.substr(0, 4));
  EXPECT_EQ(r["max_output_tokens"], 4);
  EXPECT_EQ(s.generator.last().max_tokens, 4);
}

TEST(Responses, InputItemsBecomeTheConversationTheTemplateRenders) {
  TestServer s;
  json input = json::array({
      {{"type", "message"}, {"role", "developer"}, {"content", {{{"type", "input_text"}, {"text", "Rules."}}}}},
      {{"role", "user"}, {"content", "List files"}},
      {{"type", "reasoning"}, {"id", "rs_1"}, {"summary", json::array()},
       {"content", {{{"type", "reasoning_text"}, {"text", "use ls"}}}}, {"encrypted_content", "opaque"}},
      {{"type", "function_call"}, {"call_id", "call_1"}, {"name", "shell"}, {"arguments", "{\"cmd\":\"ls\"}"}},
      {{"type", "function_call_output"}, {"call_id", "call_1"}, {"output", "a.txt"}},
      {{"type", "message"}, {"role", "assistant"}, {"content", {{{"type", "output_text"}, {"text", "One file."}}}}},
      {{"type", "message"}, {"role", "user"}, {"content", {{{"type", "input_text"}, {"text", "Thanks"}}}}},
  });
  json tools = json::array({{{"type", "function"}, {"name", "shell"}, {"description", "Run"}, {"strict", false},
                             {"parameters", {{"type", "object"}, {"properties", {{"cmd", {{"type", "string"}}}}}}}}});
  int status = 0;
  json r = post(s, {{"input", input}, {"instructions", "Be brief."}, {"tools", tools}}, &status);
  ASSERT_EQ(status, 200) << r.dump();
  // The test template prints role and content: the call is an assistant turn (its tool_calls are for real
  // templates), its output a tool turn; leading developer text joins the instructions.
  EXPECT_EQ(prompt_text(s),
            "<|im_start|>system\nBe brief.\n\nRules.<|im_end|>\n<|im_start|>user\nList files<|im_end|>\n"
            "<|im_start|>assistant\n<|im_end|>\n<|im_start|>tool\na.txt<|im_end|>\n"
            "<|im_start|>assistant\nOne file.<|im_end|>\n<|im_start|>user\nThanks<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(r["tools"], tools);
}

TEST(Responses, UnsupportedItemsToolsAndPartsAre400sNamingThem) {
  TestServer s;
  struct Case {
    json body;
    std::string param;
    std::string says;
  };
  const json user = json::array({{{"role", "user"}, {"content", "x"}}});
  std::vector<Case> cases = {
      {{{"input", user}, {"tools", {{{"type", "function"}, {"name", "f"}}, {{"type", "web_search"}}}}},
       "tools[1].type", "web_search"},
      {{{"input", {{{"type", "computer_call"}, {"id", "c"}}}}}, "input[0].type", "computer_call"},
      {{{"input", {{{"role", "user"}, {"content", {{{"type", "input_image"}, {"image_url", "x"}}}}}}}},
       "input[0].content[0].type", "input_image"},
      {{{"input", {{{"role", "robot"}, {"content", "x"}}}}}, "input[0].role", "robot"},
      {{{"input", 5}}, "input", "string"},
      {{{"input", user}, {"tool_choice", "sometimes"}}, "tool_choice", "sometimes"},
      {{{"input", user}, {"background", true}}, "background", "background"},
      {{{"model", "test-model"}}, "input", "required"},
  };
  for (const Case& c : cases) {
    int status = 0;
    json r = post(s, c.body, &status);
    EXPECT_EQ(status, 400) << c.body.dump();
    expect_openai_error(r.dump(), c.param);
    EXPECT_NE(r["error"]["message"].get<std::string>().find(c.says), std::string::npos) << r.dump();
  }
  EXPECT_TRUE(s.generator.submitted().empty());
}

TEST(Responses, AStreamSendsTheEventSequenceWithConsecutiveSequenceNumbers) {
  TestServer s;
  auto c = s.client();
  int status = 0;
  std::string out = post_json(c, "/v1/responses", {{"input", "Hi"}, {"stream", true}}, &status);
  ASSERT_EQ(status, 200) << out;
  std::vector<SseEvent> events = parse_sse(out);
  std::vector<std::string> types;
  std::string deltas;
  json completed;
  for (size_t i = 0; i < events.size(); i++) {
    json e = json::parse(events[i].data);
    EXPECT_EQ(events[i].event, e["type"]) << "the SSE event name is the data's type";
    EXPECT_EQ(e["sequence_number"], i);
    const std::string type = e["type"];
    if (types.empty() || types.back() != type) types.push_back(type);
    if (type == "response.output_text.delta") {
      deltas += e["delta"].get<std::string>();
      EXPECT_EQ(e["output_index"], 0);
      EXPECT_EQ(e["content_index"], 0);
    }
    if (type == "response.created" || type == "response.in_progress") {
      EXPECT_EQ(e["response"]["status"], "in_progress");
      EXPECT_EQ(e["response"]["output"], json::array());
    }
    if (type == "response.output_text.done") EXPECT_EQ(e["text"], s.generator.script);
    if (type == "response.completed") completed = e["response"];
  }
  const std::vector<std::string> expected = {
      "response.created",           "response.in_progress",      "response.output_item.added",
      "response.content_part.added", "response.output_text.delta", "response.output_text.done",
      "response.content_part.done", "response.output_item.done",  "response.completed"};
  EXPECT_EQ(types, expected);
  EXPECT_EQ(deltas, s.generator.script);
  ASSERT_TRUE(completed.is_object());
  EXPECT_EQ(completed["status"], "completed");
  EXPECT_EQ(completed["output"][0]["content"][0]["text"], s.generator.script);
  EXPECT_EQ(completed["usage"]["output_tokens"], s.generator.script.size() + 1);
  // Stored: GET answers the same object.
  auto got = c.Get(("/v1/responses/" + completed["id"].get<std::string>()).c_str());
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status, 200);
  EXPECT_EQ(json::parse(got->body), completed);
}

TEST(Responses, AStreamCutByMaxOutputTokensEndsWithResponseIncomplete) {
  TestServer s;
  auto c = s.client();
  int status = 0;
  std::string out = post_json(c, "/v1/responses", {{"input", "Hi"}, {"stream", true}, {"max_output_tokens", 3}}, &status);
  std::vector<SseEvent> events = parse_sse(out);
  ASSERT_FALSE(events.empty());
  json last = json::parse(events.back().data);
  EXPECT_EQ(last["type"], "response.incomplete");
  EXPECT_EQ(last["response"]["incomplete_details"]["reason"], "max_output_tokens");
}

TEST(Responses, PreviousResponseIdContinuesTheStoredConversation) {
  TestServer s;
  int status = 0;
  json first = post(s, {{"input", "Hi"}, {"instructions", "Be brief."}}, &status);
  ASSERT_EQ(status, 200);
  json second = post(s, {{"input", "More"}, {"previous_response_id", first["id"]}}, &status);
  ASSERT_EQ(status, 200) << second.dump();
  EXPECT_EQ(second["previous_response_id"], first["id"]);
  // The first turn and its answer, then the new input; instructions are not carried over (as OpenAI does).
  EXPECT_EQ(prompt_text(s), "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n" + s.generator.script +
                                "<|im_end|>\n<|im_start|>user\nMore<|im_end|>\n<|im_start|>assistant\n");
  json third = post(s, {{"input", "Again"}, {"previous_response_id", second["id"]}}, &status);
  ASSERT_EQ(status, 200);
  EXPECT_NE(prompt_text(s).find("More<|im_end|>\n<|im_start|>assistant\n" + s.generator.script), std::string::npos);
}

TEST(Responses, AnUnknownOrUnstoredPreviousResponseIsA404InOpenAIsShape) {
  TestServer s;
  int status = 0;
  json r = post(s, {{"input", "Hi"}, {"previous_response_id", "resp_nope"}}, &status);
  EXPECT_EQ(status, 404);
  expect_openai_error(r.dump(), "previous_response_id");
  EXPECT_EQ(r["error"]["code"], "previous_response_not_found");
  EXPECT_EQ(r["error"]["message"], "Previous response with id 'resp_nope' not found.");

  json unstored = post(s, {{"input", "Hi"}, {"store", false}}, &status);
  ASSERT_EQ(status, 200);
  EXPECT_EQ(unstored["store"], false);
  post(s, {{"input", "Hi"}, {"previous_response_id", unstored["id"]}}, &status);
  EXPECT_EQ(status, 404);
  auto c = s.client();
  auto got = c.Get(("/v1/responses/" + unstored["id"].get<std::string>()).c_str());
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status, 404);
}

TEST(Responses, DeleteForgetsAStoredResponse) {
  TestServer s;
  int status = 0;
  json r = post(s, {{"input", "Hi"}}, &status);
  const std::string path = "/v1/responses/" + r["id"].get<std::string>();
  auto c = s.client();
  auto del = c.Delete(path.c_str());
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 200);
  EXPECT_EQ(json::parse(del->body), json({{"id", r["id"]}, {"object", "response"}, {"deleted", true}}));
  auto got = c.Get(path.c_str());
  EXPECT_EQ(got->status, 404);
  expect_openai_error(got->body);
  EXPECT_EQ(c.Delete(path.c_str())->status, 404);
}

TEST(Responses, TheStoreIsBoundedByCount) {
  ServerOptions options;
  options.http.responses_store_max_entries = 2;
  TestServer s(options);
  int status = 0;
  std::vector<std::string> ids;
  for (int i = 0; i < 3; i++) ids.push_back(post(s, {{"input", "Hi"}}, &status)["id"]);
  auto c = s.client();
  EXPECT_EQ(c.Get(("/v1/responses/" + ids[0]).c_str())->status, 404);
  EXPECT_EQ(c.Get(("/v1/responses/" + ids[2]).c_str())->status, 200);
}

// The body Codex CLI 0.171 sent on its first turn (`codex exec "say hi"`, captured): developer and user message
// items, function tools, a namespace of functions, and a web_search tool keel cannot run.
TEST(Responses, CodexCliFirstTurnIsServedOnceItsHostedToolIsOff) {
  std::ifstream f(std::string(KEEL_SOURCE_DIR) + "/tests/server/fixtures/codex_exec_request.json");
  ASSERT_TRUE(f.good());
  std::stringstream text;
  text << f.rdbuf();
  json body = json::parse(text.str());
  body["model"] = "test-model";
  body["stream"] = false;
  TestServer s;
  s.generator.max_len = 1 << 16;  // the test tokenizer spends a token per byte of Codex's 40 KB
  int status = 0;
  json r = post(s, body, &status);
  EXPECT_EQ(status, 400);
  EXPECT_NE(r["error"]["message"].get<std::string>().find("web_search"), std::string::npos) << r.dump();

  // As `codex exec -c web_search=disabled` sends it.
  json tools = json::array();
  for (const json& t : body["tools"])
    if (t["type"] != "web_search") tools.push_back(t);
  body["tools"] = tools;
  r = post(s, body, &status);
  ASSERT_EQ(status, 200) << r.dump();
  EXPECT_EQ(r["store"], false);
  EXPECT_EQ(r["status"], "completed");
  const std::string prompt = prompt_text(s);
  EXPECT_EQ(prompt.rfind("<|im_start|>system\nYou are a coding agent running in the Codex CLI", 0), 0u);
  EXPECT_NE(prompt.find("<|im_start|>user\nsay hi<|im_end|>\n<|im_start|>assistant\n"), std::string::npos);
}

}  // namespace
}  // namespace keel::server
