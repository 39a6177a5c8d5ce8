// Agent history through the real chat templates. The oracle is tests/golden/templates/*.json: conversations in the
// shape transformers' apply_chat_template takes (assistant content "", tool_calls with arguments as a mapping,
// tool messages, reasoning_content) and what it renders. The same conversations are sent as clients send them —
// OpenAI (content null, arguments a JSON string) and Anthropic (tool_use / tool_result / thinking blocks, a system
// field) — and must render to transformers' bytes exactly.
#include <gtest/gtest.h>

#include <string>

#include "env/env.h"
#include "server/anthropic_input.h"
#include "server/chat_messages.h"

namespace keel::server {
namespace {

json read_golden(const std::string& name) {
  auto text = env::Env::posix()->read_file(std::string(KEEL_SOURCE_DIR) + "/tests/golden/templates/" + name + ".json");
  EXPECT_TRUE(text.ok()) << text.status().message();
  return text.ok() ? json::parse(*text) : json();
}

// The template of a golden file; nullopt (and the test skipped) when its npm tokenizer is not fetched.
std::optional<ChatTemplate> golden_template(const json& golden, const std::string& name) {
  const std::string source = golden["source"].get<std::string>();
  Result<ChatTemplate> ct = Status(Code::kInternal, "unset");
  if (source.rfind("npm:", 0) == 0) {
    std::string dir = std::string(KEEL_SOURCE_DIR) + "/.npm-tokenizers/" + name + "/package/models";
    if (!env::Env::posix()->file_exists(dir + "/tokenizer_config.json")) return std::nullopt;
    ct = ChatTemplate::load(dir);
  } else {
    std::map<std::string, std::string> special;
    for (const char* t : {"bos_token", "eos_token"}) {
      if (golden[t].is_string()) special[t] = golden[t].get<std::string>();
    }
    ct = ChatTemplate::from_source(golden["chat_template"].get<std::string>(), special, name + " (inline)");
  }
  EXPECT_TRUE(ct.ok()) << ct.status().message();
  if (!ct.ok()) return std::nullopt;
  return std::move(*ct);
}

// Cases whose conversation a client can send (text content only), with transformers' rendering. The one case that
// hands the template a raw arguments string is left out: clients' strings are parsed, as vLLM does.
std::vector<json> sendable_cases(const json& golden) {
  std::vector<json> out;
  for (const json& c : golden["cases"]) {
    if (c.contains("error") || c["name"] == "tool_call_string_arguments") continue;
    bool text_only = true;
    for (const json& m : c["messages"]) text_only = text_only && m["content"].is_string();
    if (text_only) out.push_back(c);
  }
  return out;
}

// As an OpenAI client sends it: a tool-calling assistant turn has content null and arguments as JSON text.
json as_openai(const json& messages) {
  json out = messages;
  for (json& m : out) {
    if (!m.contains("tool_calls")) continue;
    if (m["content"] == "") m["content"] = nullptr;
    for (json& call : m["tool_calls"]) call["function"]["arguments"] = call["function"]["arguments"].dump();
  }
  return out;
}

// As an Anthropic client sends it: the leading system message becomes `system`, assistant tool calls `tool_use`
// blocks, reasoning a `thinking` block, consecutive tool messages one user message of `tool_result` blocks, and
// tools {name, description, input_schema}. Null when the conversation has no Anthropic form (nothing but system).
json as_anthropic(const json& c) {
  json body{{"max_tokens", 16}, {"messages", json::array()}};
  for (const json& m : c["messages"]) {
    const std::string role = m["role"];
    if (role == "system" && body["messages"].empty() && !body.contains("system")) {
      body["system"] = m["content"];
    } else if (role == "assistant") {
      json blocks = json::array();
      if (m.contains("reasoning_content")) blocks.push_back({{"type", "thinking"}, {"thinking", m["reasoning_content"]}, {"signature", "x"}});
      if (m["content"] != "" || !m.contains("tool_calls")) blocks.push_back({{"type", "text"}, {"text", m["content"]}});
      for (const json& call : m.value("tool_calls", json::array())) {
        blocks.push_back({{"type", "tool_use"}, {"id", call["id"]}, {"name", call["function"]["name"]},
                          {"input", call["function"]["arguments"]}});
      }
      body["messages"].push_back({{"role", "assistant"}, {"content", blocks}});
    } else if (role == "tool") {
      json result{{"type", "tool_result"}, {"tool_use_id", m["tool_call_id"]}, {"content", m["content"]}};
      json& msgs = body["messages"];
      if (!msgs.empty() && msgs.back()["role"] == "user" && msgs.back()["content"].is_array() &&
          msgs.back()["content"].back()["type"] == "tool_result") {
        msgs.back()["content"].push_back(result);
      } else {
        msgs.push_back({{"role", "user"}, {"content", json::array({result})}});
      }
    } else {
      body["messages"].push_back({{"role", role}, {"content", m["content"]}});
    }
  }
  if (body["messages"].empty()) return nullptr;
  if (c["tools"].is_array()) {
    body["tools"] = json::array();
    for (const json& t : c["tools"]) {
      body["tools"].push_back({{"name", t["function"]["name"]}, {"description", t["function"]["description"]},
                               {"input_schema", t["function"]["parameters"]}});
    }
  }
  if (c["kwargs"].is_object()) body["chat_template_kwargs"] = c["kwargs"];
  return body;
}

void check_client_shapes(const std::string& name) {
  json golden = read_golden(name);
  std::optional<ChatTemplate> ct = golden_template(golden, name);
  if (!ct) GTEST_SKIP() << name << ": run `make tokenizers`";
  int openai = 0, anthropic = 0, tool_cases = 0;
  for (const json& c : sendable_cases(golden)) {
    SCOPED_TRACE(name + " / " + c["name"].get<std::string>());
    const std::string expected = c["expected"];
    const bool agp = c["add_generation_prompt"];
    bool tools_history = false;
    for (const json& m : c["messages"]) tools_history = tools_history || m.contains("tool_calls");
    tool_cases += tools_history;

    Result<json> messages = template_messages_from_openai(as_openai(c["messages"]));
    ASSERT_TRUE(messages.ok()) << messages.status().message();
    Result<std::string> out = render_chat(*ct, *messages, c["tools"], agp, c["kwargs"]);
    ASSERT_TRUE(out.ok()) << out.status().message();
    EXPECT_EQ(*out, expected) << "OpenAI shape";
    openai += *out == expected;

    json body = as_anthropic(c);
    if (body.is_null()) continue;
    GenerationSpec spec;
    Status s = read_anthropic_prompt(body, &spec);
    ASSERT_TRUE(s.ok()) << s.message();
    out = render_chat(*ct, spec.messages, spec.tools, agp, spec.template_kwargs);
    ASSERT_TRUE(out.ok()) << out.status().message();
    EXPECT_EQ(*out, expected) << "Anthropic shape: " << body.dump();
    anthropic += *out == expected;
  }
  std::printf("[ golden   ] %s: %d OpenAI-shaped and %d Anthropic-shaped conversations (%d with tool history) "
              "render as transformers does\n",
              name.c_str(), openai, anthropic, tool_cases);
}

TEST(ClientHistoryRendersAsTransformers, Qwen3) { check_client_shapes("qwen3"); }
TEST(ClientHistoryRendersAsTransformers, Llama3) { check_client_shapes("llama3"); }
TEST(ClientHistoryRendersAsTransformers, Gemma3) { check_client_shapes("gemma3"); }
TEST(ClientHistoryRendersAsTransformers, Llama31StyleWithTools) { check_client_shapes("llama31"); }
TEST(ClientHistoryRendersAsTransformers, MistralStyleWithTools) { check_client_shapes("mistral"); }

// The demo model's template concatenates content: an assistant turn with content null failed there ("can only
// concatenate") before content became "".
TEST(TemplateMessages, NullContentOfAToolCallingTurnRendersThroughAConcatenatingTemplate) {
  auto ct = ChatTemplate::from_source(
      "{%- for message in messages %}{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
      "'<|im_end|>' + '\\n' }}{%- endfor %}",
      {}, "demo");
  ASSERT_TRUE(ct.ok());
  json wire = json::parse(R"([{"role":"user","content":"weather?"},
    {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function",
      "function":{"name":"get_weather","arguments":"{\"city\":\"Oslo\"}"}}]},
    {"role":"tool","tool_call_id":"c1","content":"cold"}])");
  EXPECT_FALSE(ct->render(wire, nullptr, false).ok());
  Result<json> messages = template_messages_from_openai(wire);
  ASSERT_TRUE(messages.ok()) << messages.status().message();
  EXPECT_EQ((*messages)[1]["content"], "");
  EXPECT_EQ((*messages)[1]["tool_calls"][0]["function"]["arguments"], json({{"city", "Oslo"}}));
  Result<std::string> out = render_chat(*ct, *messages, nullptr, false, nullptr);
  ASSERT_TRUE(out.ok()) << out.status().message();
  EXPECT_EQ(*out, "<|im_start|>user\nweather?<|im_end|>\n<|im_start|>assistant\n<|im_end|>\n<|im_start|>tool\ncold<|im_end|>\n");
}

TEST(TemplateMessages, ArgumentsThatAreNotJsonStayTheModelsText) {
  json wire = json::parse(R"([{"role":"assistant","content":null,"tool_calls":[
    {"id":"a","function":{"name":"f","arguments":"{broken"}},{"id":"b","function":{"name":"g","arguments":""}}]}])");
  Result<json> messages = template_messages_from_openai(wire);
  ASSERT_TRUE(messages.ok()) << messages.status().message();
  EXPECT_EQ((*messages)[0]["tool_calls"][0]["function"]["arguments"], "{broken");
  EXPECT_EQ((*messages)[0]["tool_calls"][1]["function"]["arguments"], json::object());
  EXPECT_EQ((*messages)[0]["tool_calls"][1]["type"], "function");
}

TEST(TemplateMessages, DeveloperIsSystemAndReasoningReachesTheTemplate) {
  json wire = json::parse(R"([{"role":"developer","content":"be brief"},{"role":"user","content":"hi"},
    {"role":"assistant","content":"hello","reasoning":"greet back"}])");
  Result<json> messages = template_messages_from_openai(wire);
  ASSERT_TRUE(messages.ok());
  EXPECT_EQ((*messages)[0]["role"], "system");
  EXPECT_EQ((*messages)[2]["reasoning_content"], "greet back");
}

TEST(TemplateMessages, ImagePartsAreRefusedNamingVision) {
  json wire = json::parse(R"([{"role":"user","content":[{"type":"text","text":"what is this?"},
    {"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}])");
  Result<json> messages = template_messages_from_openai(wire);
  ASSERT_FALSE(messages.ok());
  EXPECT_EQ(messages.status().message().rfind("messages[0].content[1].type: \"image_url\" parts are not supported", 0), 0u)
      << messages.status().message();
  EXPECT_NE(messages.status().message().find("no vision"), std::string::npos);
}

}  // namespace
}  // namespace keel::server
