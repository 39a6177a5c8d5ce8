// The Anthropic prompt fields as Claude Code sends them, and inline system messages through the real templates.
#include "server/anthropic_input.h"

#include <gtest/gtest.h>

#include "env/env.h"
#include "server/chat_messages.h"

namespace keel::server {
namespace {

Result<GenerationSpec> read(const char* body_json) {
  GenerationSpec spec;
  Status s = read_anthropic_prompt(json::parse(body_json), &spec);
  if (!s.ok()) return s;
  return spec;
}

std::string error_of(const char* body_json) {
  Result<GenerationSpec> r = read(body_json);
  return r.ok() ? "" : r.status().message();
}

TEST(AnthropicPrompt, ToolUseToolResultAndThinkingBecomeTemplateHistory) {
  auto spec = read(R"({"system":[{"type":"text","text":"x-anthropic-billing-header: cc_version=2.1; cch=abc;"},
      {"type":"text","text":"You are an agent.","cache_control":{"type":"ephemeral"}}],
    "messages":[
      {"role":"user","content":[{"type":"text","text":"list files"}]},
      {"role":"assistant","content":[{"type":"thinking","thinking":"use Bash","signature":"s"},
         {"type":"redacted_thinking","data":"opaque"},
         {"type":"text","text":"Listing."},
         {"type":"tool_use","id":"toolu_1","name":"Bash","input":{"command":"ls"}}]},
      {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":[{"type":"text","text":"a.txt"}]},
         {"type":"tool_result","tool_use_id":"toolu_2","content":"denied","is_error":true},
         {"type":"text","text":"and now?","cache_control":{"type":"ephemeral"}}]},
      {"role":"system","content":"<system-reminder>be brief</system-reminder>"}]})");
  ASSERT_TRUE(spec.ok()) << spec.status().message();
  json expected = json::parse(R"([
    {"role":"system","content":"You are an agent."},
    {"role":"user","content":"list files"},
    {"role":"assistant","content":"Listing.","reasoning_content":"use Bash",
     "tool_calls":[{"id":"toolu_1","type":"function","function":{"name":"Bash","arguments":{"command":"ls"}}}]},
    {"role":"tool","tool_call_id":"toolu_1","content":"a.txt"},
    {"role":"tool","tool_call_id":"toolu_2","content":"Error: denied"},
    {"role":"user","content":"and now?"},
    {"role":"system","content":"<system-reminder>be brief</system-reminder>"}])");
  EXPECT_EQ(spec->messages, expected);
}

TEST(AnthropicPrompt, ImagesAndDocumentsAreRefusedNamingWhatIsUnsupported) {
  EXPECT_EQ(error_of(R"({"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64",
      "media_type":"image/png","data":"AAAA"}}]}]})"),
            "messages[0].content[0].type: image blocks are not supported: keel serves text-only models (no vision)");
  EXPECT_EQ(error_of(R"({"messages":[{"role":"user","content":[{"type":"document","source":{}}]}]})")
                .rfind("messages[0].content[0].type: document blocks are not supported", 0),
            0u);
  EXPECT_EQ(error_of(R"({"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t",
      "content":[{"type":"image","source":{}}]}]}]})"),
            "messages[0].content[0].content[0].type: image blocks are not supported: keel serves text-only models "
            "(no vision)");
  EXPECT_EQ(error_of(R"({"messages":[{"role":"tool","content":"x"}]})"),
            "messages[0].role: expected \"user\", \"assistant\" or \"system\"");
}

TEST(AnthropicPrompt, ClearThinkingKeepsTheLastTurnsThinkingOnly) {
  const char* conversation = R"("messages":[
      {"role":"user","content":"a"},
      {"role":"assistant","content":[{"type":"thinking","thinking":"t1"},{"type":"text","text":"r1"}]},
      {"role":"user","content":"b"},
      {"role":"assistant","content":[{"type":"thinking","thinking":"t2"},{"type":"tool_use","id":"x","name":"f","input":{}}]},
      {"role":"user","content":[{"type":"tool_result","tool_use_id":"x","content":"ok"}]},
      {"role":"assistant","content":[{"type":"thinking","thinking":"t3"},{"type":"text","text":"r2"}]}])";
  auto reasoning = [](const GenerationSpec& spec) {
    std::string out;
    for (const json& m : spec.messages) out += m.value("reasoning_content", "-");
    return out;
  };
  auto keep_one = read((std::string(R"({"context_management":{"edits":[{"type":"clear_thinking_20251015",
      "keep":{"type":"thinking_turns","value":1}}]},)") + conversation + "}").c_str());
  ASSERT_TRUE(keep_one.ok()) << keep_one.status().message();
  // The last turn is both assistant messages after "b" (a tool result does not end a turn).
  EXPECT_EQ(reasoning(*keep_one), "---t2-t3");
  auto keep_all = read((std::string(R"({"context_management":{"edits":[{"type":"clear_thinking_20251015",
      "keep":"all"}]},)") + conversation + "}").c_str());
  ASSERT_TRUE(keep_all.ok());
  EXPECT_EQ(reasoning(*keep_all), "-t1-t2-t3");
  auto default_keep = read((std::string(R"({"context_management":{"edits":[{"type":"clear_tool_uses_20250919"},
      {"type":"clear_thinking_20251015"}]},)") + conversation + "}").c_str());
  ASSERT_TRUE(default_keep.ok());
  EXPECT_EQ(reasoning(*default_keep), "---t2-t3");
}

TEST(AnthropicPrompt, ThinkingAndEffortSetTheTemplatesThinkingSwitch) {
  auto kwargs = [](const char* fields) {
    auto spec = read((std::string("{") + fields + R"(,"messages":[{"role":"user","content":"hi"}]})").c_str());
    EXPECT_TRUE(spec.ok()) << spec.status().message();
    return spec.ok() ? spec->template_kwargs : json("failed");
  };
  EXPECT_EQ(kwargs(R"("thinking":{"type":"adaptive","display":"omitted"},"output_config":{"effort":"medium"})"),
            json::parse(R"({"enable_thinking":true,"reasoning_effort":"medium"})"));
  EXPECT_EQ(kwargs(R"("thinking":{"type":"enabled","budget_tokens":2048})"), json::parse(R"({"enable_thinking":true})"));
  EXPECT_EQ(kwargs(R"("thinking":{"type":"disabled"})"), json::parse(R"({"enable_thinking":false})"));
  EXPECT_EQ(kwargs(R"("thinking":{"type":"adaptive"},"output_config":{"effort":"low"})"),
            json::parse(R"({"enable_thinking":false,"reasoning_effort":"low"})"));
  EXPECT_EQ(kwargs(R"("thinking":{"type":"enabled"},"output_config":{"effort":"low"})"),
            json::parse(R"({"enable_thinking":true,"reasoning_effort":"low"})"));
  EXPECT_EQ(kwargs(R"("thinking":{"type":"disabled"},"chat_template_kwargs":{"enable_thinking":true,"x":1})"),
            json::parse(R"({"enable_thinking":true,"x":1})"));
  EXPECT_EQ(kwargs(R"("metadata":{"user_id":"u"})"), json(nullptr));
  EXPECT_EQ(error_of(R"({"thinking":{"type":"sometimes"},"messages":[{"role":"user","content":"hi"}]})"),
            "thinking.type: expected \"enabled\", \"disabled\" or \"adaptive\"");
}

TEST(AnthropicPrompt, DeferredAndServerToolsAreLeftOutUntilLoaded) {
  const char* tools = R"("tools":[{"name":"Read","description":"read","input_schema":{"type":"object"}},
      {"name":"Later","input_schema":{"type":"object"},"defer_loading":true},
      {"type":"web_search_20250305","name":"web_search","max_uses":5}])";
  auto names = [](const GenerationSpec& spec) {
    std::string out;
    for (const json& t : spec.tools) out += t["function"]["name"].get<std::string>() + ";";
    return out;
  };
  auto before = read((std::string("{") + tools + R"(,"messages":[{"role":"user","content":"hi"}]})").c_str());
  ASSERT_TRUE(before.ok()) << before.status().message();
  EXPECT_EQ(names(*before), "Read;");
  EXPECT_EQ(before->tools[0], json::parse(R"({"type":"function","function":{"name":"Read","description":"read",
      "parameters":{"type":"object"}}})"));
  auto after = read((std::string("{") + tools + R"(,"messages":[{"role":"user","content":"hi"},
      {"role":"assistant","content":[{"type":"tool_use","id":"s","name":"ToolSearch","input":{"query":"later"}}]},
      {"role":"user","content":[{"type":"tool_result","tool_use_id":"s",
        "content":[{"type":"tool_reference","tool_name":"Later"}]}]}]})").c_str());
  ASSERT_TRUE(after.ok()) << after.status().message();
  EXPECT_EQ(names(*after), "Read;Later;");
}

std::optional<ChatTemplate> npm_template(const std::string& name) {
  std::string dir = std::string(KEEL_SOURCE_DIR) + "/.npm-tokenizers/" + name + "/package/models";
  if (!env::Env::posix()->file_exists(dir + "/tokenizer_config.json")) return std::nullopt;
  auto ct = ChatTemplate::load(dir);
  EXPECT_TRUE(ct.ok()) << ct.status().message();
  return ct.ok() ? std::optional<ChatTemplate>(std::move(*ct)) : std::nullopt;
}

const json kInline = json::parse(R"([{"role":"system","content":"You are terse."},{"role":"user","content":"one"},
  {"role":"assistant","content":"uno"},{"role":"system","content":"Answer in French."},{"role":"user","content":"two"},
  {"role":"system","content":"No lists."}])");

TEST(InlineSystem, RendersInPlaceWhereTheTemplateHasASystemTurnForIt) {
  auto qwen3 = npm_template("qwen3");
  if (!qwen3) GTEST_SKIP() << "run `make tokenizers`";
  Result<std::string> out = render_chat(*qwen3, kInline, nullptr, true, nullptr);
  ASSERT_TRUE(out.ok()) << out.status().message();
  EXPECT_EQ(*out, *qwen3->render(kInline, nullptr, true));
  EXPECT_NE(out->find("<|im_end|>\n<|im_start|>system\nAnswer in French.<|im_end|>\n<|im_start|>user\ntwo"),
            std::string::npos) << *out;
}

TEST(InlineSystem, IsFoldedIntoTheNextOrPreviousUserTurnWhereTheTemplateRefusesIt) {
  for (const char* name : {"gemma3", "mistral"}) {
    SCOPED_TRACE(name);
    std::optional<ChatTemplate> ct;
    if (std::string(name) == "gemma3") {
      ct = npm_template(name);
      if (!ct) continue;
    } else {
      auto text = env::Env::posix()->read_file(std::string(KEEL_SOURCE_DIR) + "/tests/golden/templates/mistral.json");
      ASSERT_TRUE(text.ok());
      json golden = json::parse(*text);
      auto t = ChatTemplate::from_source(golden["chat_template"].get<std::string>(),
                                         {{"bos_token", golden["bos_token"]}, {"eos_token", golden["eos_token"]}}, name);
      ASSERT_TRUE(t.ok());
      ct = std::move(*t);
    }
    EXPECT_FALSE(ct->render(kInline, nullptr, true).ok()) << "the template itself refuses a system turn mid-way";
    Result<std::string> out = render_chat(*ct, kInline, nullptr, true, nullptr);
    ASSERT_TRUE(out.ok()) << out.status().message();
    json folded = fold_inline_system(kInline);
    EXPECT_EQ(folded, json::parse(R"([{"role":"system","content":"You are terse."},{"role":"user","content":"one"},
      {"role":"assistant","content":"uno"},{"role":"user","content":"Answer in French.\n\ntwo\n\nNo lists."}])"));
    EXPECT_EQ(*out, *ct->render(folded, nullptr, true));
  }
}

TEST(InlineSystem, FoldingOnlyChangesTheEndOfAGrowingConversation) {
  // Claude Code appends a system message after the latest user turn; next turn that message is followed by the
  // assistant's answer. Both turns must fold it into the same place.
  json turn1 = json::parse(R"([{"role":"user","content":"q1"},{"role":"system","content":"env"}])");
  json turn2 = turn1;
  turn2.push_back(json{{"role", "assistant"}, {"content", "a1"}});
  turn2.push_back(json{{"role", "user"}, {"content", "q2"}});
  json f1 = fold_inline_system(turn1), f2 = fold_inline_system(turn2);
  ASSERT_EQ(f1.size(), 1u);
  EXPECT_EQ(f1[0], f2[0]);
  EXPECT_EQ(f1[0]["content"], "q1\n\nenv");
  json after_tool = json::parse(R"([{"role":"user","content":"q"},{"role":"assistant","content":"","tool_calls":[]},
    {"role":"tool","tool_call_id":"t","content":"r"},{"role":"system","content":"note"}])");
  EXPECT_EQ(fold_inline_system(after_tool).back(), json::parse(R"({"role":"tool","tool_call_id":"t","content":"r\n\nnote"})"));
}

}  // namespace
}  // namespace keel::server
