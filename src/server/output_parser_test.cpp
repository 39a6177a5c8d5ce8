// OutputParser against model outputs written as the models write them: every text is also fed split at every
// byte boundary (two pieces) and one byte at a time, and must give the same events as fed whole.
#include "server/output_parser.h"

#include <fstream>
#include <random>
#include <sstream>

#include <gtest/gtest.h>

namespace keel::server {
namespace {

using json = nlohmann::ordered_json;
using Kind = OutputEvent::Kind;

json weather_tools() {
  return json::parse(R"([
    {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {
      "city": {"type": "string"}, "days": {"type": "integer"}, "detailed": {"type": "boolean"},
      "options": {"type": "object"}, "zip": {"type": "string"}}}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {
      "tz": {"type": "string"}}}}}])");
}

OutputParserOptions options(ToolCallFormat format, ReasoningFormat reasoning = ReasoningFormat::kNone) {
  OutputParserOptions o;
  o.tools = format;
  o.reasoning = reasoning;
  o.tools_json = weather_tools();
  return o;
}

// Feeds `pieces` to a fresh parser with deterministic ids; returns the merged events.
std::vector<OutputEvent> run(OutputParserOptions o, const std::vector<std::string>& pieces) {
  auto counter = std::make_shared<int>(0);
  o.new_id = [counter] { return "call_" + std::to_string((*counter)++); };
  OutputParser parser(o);
  std::vector<OutputEvent> events;
  for (const std::string& p : pieces) append_events(&events, parser.feed(p));
  append_events(&events, parser.finish());
  return events;
}

// The events of `text` fed whole, after checking every split gives the same.
std::vector<OutputEvent> parse_all_splits(const OutputParserOptions& o, const std::string& text) {
  std::vector<OutputEvent> whole = run(o, {text});
  for (size_t k = 1; k < text.size(); ++k) {
    EXPECT_EQ(run(o, {text.substr(0, k), text.substr(k)}), whole) << "split at byte " << k << " of: " << text;
  }
  std::vector<std::string> bytes;
  for (char c : text) bytes.emplace_back(1, c);
  EXPECT_EQ(run(o, bytes), whole) << "byte by byte: " << text;
  return whole;
}

OutputSummary parse(const OutputParserOptions& o, const std::string& text) {
  return summarize(parse_all_splits(o, text));
}

TEST(OutputParser, HermesQwen3ThinkingTextAndTwoCalls) {
  const std::string out =
      "<think>\nThe user wants the weather and the time. I'll call both tools.\n</think>\n\n"
      "Let me check both.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", "
      "\"days\": 3}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"tz\": "
      "\"Europe/Paris\"}}\n</tool_call>";
  OutputSummary s = parse(options(ToolCallFormat::kHermes, ReasoningFormat::kThink), out);
  EXPECT_EQ(s.reasoning, "The user wants the weather and the time. I'll call both tools.");
  EXPECT_EQ(s.text, "Let me check both.");
  ASSERT_EQ(s.calls.size(), 2u);
  EXPECT_EQ(s.calls[0].id, "call_0");
  EXPECT_EQ(s.calls[0].name, "get_weather");
  EXPECT_EQ(s.calls[0].arguments, "{\"city\": \"Paris\", \"days\": 3}");
  EXPECT_EQ(s.calls[1].name, "get_time");
  EXPECT_EQ(s.calls[1].arguments, "{\"tz\": \"Europe/Paris\"}");
}

TEST(OutputParser, EventsComeInOrderWithOneBeginAndEndPerCall) {
  std::vector<OutputEvent> e = parse_all_splits(options(ToolCallFormat::kHermes),
                                                "Hi <tool_call>{\"name\": \"get_time\", \"arguments\": {}}</tool_call>");
  ASSERT_EQ(e.size(), 4u);
  EXPECT_EQ(e[0].kind, Kind::kText);
  EXPECT_EQ(e[0].text, "Hi");
  EXPECT_EQ(e[1].kind, Kind::kCallBegin);
  EXPECT_EQ(e[1].name, "get_time");
  EXPECT_EQ(e[1].index, 0);
  EXPECT_EQ(e[2].kind, Kind::kCallArguments);
  EXPECT_EQ(e[2].text, "{}");
  EXPECT_EQ(e[3].kind, Kind::kCallEnd);
}

TEST(OutputParser, ArgumentsStreamWhileTheyAreGenerated) {
  auto o = options(ToolCallFormat::kHermes);
  o.new_id = [] { return std::string("call_x"); };
  OutputParser p(o);
  std::vector<OutputEvent> e = p.feed("<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Pa");
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[0].kind, Kind::kCallBegin);
  EXPECT_EQ(e[1].text, "{\"city\": \"Pa");
  e = p.feed("ris\"}}\n</tool_call>");
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[0].text, "ris\"}");
  EXPECT_EQ(e[1].kind, Kind::kCallEnd);
}

TEST(OutputParser, UnicodeAndEscapedQuotesPassThroughExactly) {
  const std::string args = R"({"city": "Zürich \"Altstadt\" 東京 😀", "zip": "\u00e9\\n"})";
  OutputSummary s = parse(options(ToolCallFormat::kHermes),
                          "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": " + args + "}\n</tool_call>");
  ASSERT_EQ(s.calls.size(), 1u);
  EXPECT_EQ(s.calls[0].arguments, args);
  EXPECT_EQ(json::parse(s.calls[0].arguments)["city"], "Zürich \"Altstadt\" 東京 😀");
  // A name with an escape is decoded once.
  s = parse(options(ToolCallFormat::kHermes), "<tool_call>{\"name\": \"wetter_\\u00fc\", \"arguments\": {}}</tool_call>");
  ASSERT_EQ(s.calls.size(), 1u);
  EXPECT_EQ(s.calls[0].name, "wetter_ü");
}

TEST(OutputParser, MalformedMarkupIsText) {
  auto o = options(ToolCallFormat::kHermes);
  for (std::string text : {"<tool_call>\nnot json\n</tool_call>", "a < b <tool x", "<tool_call>{\"arguments\": {}}",
                           "<tool_call>[1, 2]</tool_call> done", "<tool_call>{\"name\": 5}</tool_call>",
                           "Sure <tool_call>{\"na", "<tool_call>{\"name\": \"\", \"arguments\": {}}"}) {
    OutputSummary s = parse(o, text);
    EXPECT_EQ(s.text, text);
    EXPECT_TRUE(s.calls.empty()) << text;
  }
}

TEST(OutputParser, ACallCutOffKeepsItsArgumentsAndNothingIsLost) {
  OutputSummary s = parse(options(ToolCallFormat::kHermes),
                          "<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Par");
  ASSERT_EQ(s.calls.size(), 1u);
  EXPECT_EQ(s.calls[0].arguments, "{\"city\": \"Par");
  // Broken after the name: the call ends, the rest is text.
  s = parse(options(ToolCallFormat::kHermes),
            "<tool_call>{\"name\": \"get_time\", \"arguments\": {\"tz\" ]]}</tool_call>");
  ASSERT_EQ(s.calls.size(), 1u);
  EXPECT_EQ(s.calls[0].arguments, "{\"tz\" ");
  EXPECT_EQ(s.text, "]]}</tool_call>");
}

TEST(OutputParser, ArgumentsBeforeNameAndStringArguments) {
  OutputSummary s = parse(options(ToolCallFormat::kHermes),
                          "<tool_call>{\"arguments\": {\"tz\": \"UTC\"}, \"name\": \"get_time\"}</tool_call>");
  ASSERT_EQ(s.calls.size(), 1u);
  EXPECT_EQ(s.calls[0].arguments, "{\"tz\": \"UTC\"}");
  s = parse(options(ToolCallFormat::kHermes),
            "<tool_call>{\"name\": \"get_time\", \"arguments\": \"{\\\"tz\\\": \\\"UTC\\\"}\"}</tool_call>");
  ASSERT_EQ(s.calls.size(), 1u);
  EXPECT_EQ(s.calls[0].arguments, "{\"tz\": \"UTC\"}");
}

TEST(OutputParser, NoToolParsingLeavesMarkupAsText) {
  const std::string text = "<tool_call>{\"name\": \"get_time\", \"arguments\": {}}</tool_call>";
  OutputSummary s = parse(options(ToolCallFormat::kNone), text);
  EXPECT_EQ(s.text, text);
  EXPECT_TRUE(s.calls.empty());
}

TEST(OutputParser, ParallelFalseClosesAfterTheFirstCall) {
  auto o = options(ToolCallFormat::kHermes);
  o.parallel_calls = false;
  OutputParser p(o);
  p.feed("<tool_call>{\"name\": \"get_time\", \"arguments\": {}}</tool_call>\n<tool_call>{\"name\": \"get_weather\"");
  EXPECT_TRUE(p.closed());
  OutputSummary s = summarize(run(o, {"<tool_call>{\"name\": \"get_time\", \"arguments\": {}}</tool_call>\n"
                                      "<tool_call>{\"name\": \"get_weather\", \"arguments\": {}}</tool_call>"}));
  ASSERT_EQ(s.calls.size(), 1u);
  EXPECT_EQ(s.calls[0].name, "get_time");
}

TEST(OutputParser, ReasoningOpenedByThePrompt) {
  auto o = options(ToolCallFormat::kNone, ReasoningFormat::kThink);
  o.starts_in_reasoning = true;
  OutputSummary s = parse(o, "Okay, 2+2 is 4.\n</think>\n\nThe answer is 4.");
  EXPECT_EQ(s.reasoning, "Okay, 2+2 is 4.");
  EXPECT_EQ(s.text, "The answer is 4.");
  s = parse(o, "Still thinking when max_tokens hit <th");
  EXPECT_EQ(s.reasoning, "Still thinking when max_tokens hit <th");
  EXPECT_EQ(s.text, "");
  // Without <think> at the start, a reasoning-capable model's output is all text.
  o.starts_in_reasoning = false;
  s = parse(o, "  Plain answer, <think> later is text");
  EXPECT_EQ(s.text, "  Plain answer, <think> later is text");
  EXPECT_EQ(s.reasoning, "");
  s = parse(o, "<thin");
  EXPECT_EQ(s.text, "<thin");
}

TEST(OutputParser, Qwen3CoderParametersBecomeJsonByTheirSchemaTypes) {
  const std::string out =
      "I'll check.\n<tool_call>\n<function=get_weather>\n<parameter=city>\nSan Francisco, \"CA\"\n</parameter>\n"
      "<parameter=days>\n3\n</parameter>\n<parameter=detailed>\ntrue\n</parameter>\n<parameter=options>\n"
      "{\"units\": \"metric\"}\n</parameter>\n<parameter=zip>\n94103\n</parameter>\n</function>\n</tool_call>\n"
      "<tool_call>\n<function=get_time>\n</function>\n</tool_call>";
  OutputSummary s = parse(options(ToolCallFormat::kQwen3Coder), out);
  EXPECT_EQ(s.text, "I'll check.");
  ASSERT_EQ(s.calls.size(), 2u);
  EXPECT_EQ(s.calls[0].name, "get_weather");
  EXPECT_EQ(json::parse(s.calls[0].arguments),
            json::parse(R"({"city": "San Francisco, \"CA\"", "days": 3, "detailed": true,
                            "options": {"units": "metric"}, "zip": "94103"})"));
  EXPECT_EQ(s.calls[1].name, "get_time");
  EXPECT_EQ(s.calls[1].arguments, "{}");
  // Values that do not fit their type stay strings; a missing </parameter> ends at the next parameter.
  s = parse(options(ToolCallFormat::kQwen3Coder),
            "<tool_call><function=get_weather><parameter=days>three<parameter=city>Oslo</function></tool_call>");
  ASSERT_EQ(s.calls.size(), 1u);
  EXPECT_EQ(json::parse(s.calls[0].arguments), json::parse(R"({"days": "three", "city": "Oslo"})"));
  s = parse(options(ToolCallFormat::kQwen3Coder), "<tool_call>\nno function here</tool_call>");
  EXPECT_EQ(s.text, "<tool_call>\nno function here</tool_call>");
}

TEST(OutputParser, Llama3JsonWholeMessageCalls) {
  auto o = options(ToolCallFormat::kLlama3Json);
  OutputSummary s = parse(o, "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}");
  ASSERT_EQ(s.calls.size(), 1u);
  EXPECT_EQ(s.calls[0].arguments, "{\"city\": \"Paris\"}");
  EXPECT_EQ(s.text, "");
  s = parse(o, "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}; {\"name\": \"get_time\", "
               "\"parameters\": {\"tz\": \"CET\"}}");
  ASSERT_EQ(s.calls.size(), 2u);
  EXPECT_EQ(s.calls[1].name, "get_time");
  s = parse(o, "<|python_tag|>{\"name\": \"get_time\", \"parameters\": {}}");
  ASSERT_EQ(s.calls.size(), 1u);
  // JSON that is an answer, not a call, is text.
  for (std::string text : {"{\"answer\": 42}", "{\"name\": \"Bob\", \"age\": 3}", "The JSON is {\"a\": 1}"}) {
    s = parse(o, text);
    EXPECT_TRUE(s.calls.empty()) << text;
    EXPECT_EQ(s.text, text);
  }
}

TEST(OutputParser, MistralBothCallForms) {
  auto o = options(ToolCallFormat::kMistral);
  OutputSummary s = parse(o, "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}, "
                             "\"id\": \"a1b2c3d4e\"}, {\"name\": \"get_time\", \"arguments\": {}}]");
  ASSERT_EQ(s.calls.size(), 2u);
  EXPECT_EQ(s.calls[0].arguments, "{\"city\": \"Paris\"}");
  EXPECT_EQ(s.calls[1].name, "get_time");
  s = parse(o, "Checking.[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Paris\"}[TOOL_CALLS]get_time[CALL_ID]x9[ARGS]{}");
  EXPECT_EQ(s.text, "Checking.");
  ASSERT_EQ(s.calls.size(), 2u);
  EXPECT_EQ(s.calls[0].name, "get_weather");
  EXPECT_EQ(s.calls[0].arguments, "{\"city\": \"Paris\"}");
  EXPECT_EQ(s.calls[1].arguments, "{}");
  s = parse(o, "[TOOL_CALLS] hello there");
  EXPECT_EQ(s.text, "[TOOL_CALLS] hello there");
}

TEST(OutputParser, Gemma3ToolCodeBlocks) {
  auto o = options(ToolCallFormat::kGemma3);
  OutputSummary s = parse(o, "Sure.\n```tool_code\nget_weather(city=\"Paris\", days=3, detailed=True, "
                             "options={'units': 'metric'})\n```");
  EXPECT_EQ(s.text, "Sure.");
  ASSERT_EQ(s.calls.size(), 1u);
  EXPECT_EQ(json::parse(s.calls[0].arguments),
            json::parse(R"({"city": "Paris", "days": 3, "detailed": true, "options": {"units": "metric"}})"));
  s = parse(o, "```tool_code\n[get_time(tz='UTC'), get_weather(city=\"Oslo\")]\n```");
  ASSERT_EQ(s.calls.size(), 2u);
  s = parse(o, "```tool_call\n{\"name\": \"get_time\", \"parameters\": {\"tz\": \"UTC\"}}\n```");
  ASSERT_EQ(s.calls.size(), 1u);
  EXPECT_EQ(s.calls[0].arguments, "{\"tz\":\"UTC\"}");
  s = parse(o, "```tool_code\nprint(1 + 1)\n```");
  EXPECT_EQ(s.text, "```tool_code\nprint(1 + 1)\n```");
}

// What a grammar forcing a call writes (render_tool_call) reads back as exactly that call, in every format.
TEST(OutputParser, RenderedCallsParseBackInEveryFormat) {
  json args = json::parse(R"({"city": "Zürich \"Altstadt\"", "days": 2})");
  for (ToolCallFormat f : {ToolCallFormat::kHermes, ToolCallFormat::kQwen3Coder, ToolCallFormat::kLlama3Json,
                           ToolCallFormat::kMistral, ToolCallFormat::kGemma3}) {
    std::string text = render_tool_call(f, "get_weather", args);
    OutputSummary s = parse(options(f), text);
    ASSERT_EQ(s.calls.size(), 1u) << tool_call_format_name(f) << ": " << text;
    EXPECT_EQ(s.calls[0].name, "get_weather");
    EXPECT_EQ(json::parse(s.calls[0].arguments), args) << tool_call_format_name(f);
    EXPECT_EQ(s.text, "") << tool_call_format_name(f);
  }
}

// Markup fragments in random order, for every format: whatever the mix, no crash, and split anywhere it gives the
// same events as whole.
TEST(OutputParser, RandomMarkupSoupIsSplitInvariant) {
  const std::vector<std::string> fragments = {
      "<tool_call>", "</tool_call>", "{", "}", "[", "]", "\"name\"", ": ", "\"get_time\"", ", ", "\"arguments\"",
      "\"tz\"", "1", "<think>", "</think>", "[TOOL_CALLS]", "get_time", "[ARGS]", "<function=", "get_time>",
      "<parameter=", "tz>", "</parameter>", "</function>", "```tool_code", "```", "get_time(tz='UTC')", ";",
      "<|python_tag|>", " ", "\n", "x", "\xC3\xBC", "\\\""};
  std::mt19937 rng(7);
  for (ToolCallFormat f : {ToolCallFormat::kHermes, ToolCallFormat::kQwen3Coder, ToolCallFormat::kLlama3Json,
                           ToolCallFormat::kMistral, ToolCallFormat::kGemma3}) {
    auto o = options(f, ReasoningFormat::kThink);
    for (int n = 0; n < 60; ++n) {
      std::string text;
      for (int k = 0, len = 1 + static_cast<int>(rng() % 24); k < len; ++k) text += fragments[rng() % fragments.size()];
      std::vector<OutputEvent> whole = run(o, {text});
      std::vector<std::string> bytes;
      for (char c : text) bytes.emplace_back(1, c);
      EXPECT_EQ(run(o, bytes), whole) << tool_call_format_name(f) << ": " << text;
      size_t a = rng() % (text.size() + 1), b = rng() % (text.size() + 1);
      if (a > b) std::swap(a, b);
      EXPECT_EQ(run(o, {text.substr(0, a), text.substr(a, b - a), text.substr(b)}), whole)
          << tool_call_format_name(f) << ": " << text;
    }
  }
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(ToolCallFormat, DetectedFromRealChatTemplates) {
  const std::string real = std::string(KEEL_SOURCE_DIR) + "/tests/golden/templates/real/";
  const std::vector<std::tuple<std::string, ToolCallFormat, ReasoningFormat>> cases = {
      {"Qwen-Qwen2.5-7B-Instruct.jinja", ToolCallFormat::kHermes, ReasoningFormat::kNone},
      {"Qwen-Qwen3-0.6B.jinja", ToolCallFormat::kHermes, ReasoningFormat::kThink},
      {"Qwen-QwQ-32B.jinja", ToolCallFormat::kHermes, ReasoningFormat::kThink},
      {"NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja", ToolCallFormat::kHermes, ReasoningFormat::kNone},
      {"Qwen3-Coder.jinja", ToolCallFormat::kQwen3Coder, ReasoningFormat::kNone},
      {"Qwen3.5-4B.jinja", ToolCallFormat::kQwen3Coder, ReasoningFormat::kThink},
      {"meta-llama-Llama-3.1-8B-Instruct.jinja", ToolCallFormat::kLlama3Json, ReasoningFormat::kNone},
      {"meta-llama-Llama-3.2-3B-Instruct.jinja", ToolCallFormat::kLlama3Json, ReasoningFormat::kNone},
      {"mistralai-Mistral-Nemo-Instruct-2407.jinja", ToolCallFormat::kMistral, ReasoningFormat::kNone},
      {"Mistral-Small-3.2-24B-Instruct-2506.jinja", ToolCallFormat::kMistral, ReasoningFormat::kNone},
  };
  for (const auto& [file, format, reasoning] : cases) {
    std::string source = read_file(real + file);
    EXPECT_EQ(tool_call_format_name(detect_tool_call_format(source)), std::string(tool_call_format_name(format)))
        << file;
    EXPECT_EQ(detect_reasoning_format(source), reasoning) << file;
  }
  const std::string golden = std::string(KEEL_SOURCE_DIR) + "/tests/golden/templates/";
  for (const auto& [file, format] : std::vector<std::pair<std::string, ToolCallFormat>>{
           {"llama31.json", ToolCallFormat::kLlama3Json}, {"mistral.json", ToolCallFormat::kMistral}}) {
    json g = json::parse(read_file(golden + file));
    EXPECT_EQ(tool_call_format_name(detect_tool_call_format(g["chat_template"].get<std::string>())),
              std::string(tool_call_format_name(format)))
        << file;
  }
  // The npm tokenizers' templates (make tokenizers): Gemma 3's has <start_of_turn> and no tool syntax; Qwen3's
  // there is ChatML without tools, which gets the default.
  for (const auto& [name, format] : std::vector<std::pair<std::string, ToolCallFormat>>{
           {"gemma3", ToolCallFormat::kGemma3}, {"qwen3", ToolCallFormat::kHermes}}) {
    std::string config = std::string(KEEL_SOURCE_DIR) + "/.npm-tokenizers/" + name + "/package/models/tokenizer_config.json";
    if (!std::ifstream(config).good()) continue;
    json c = json::parse(read_file(config));
    EXPECT_EQ(tool_call_format_name(detect_tool_call_format(c["chat_template"].dump())),
              std::string(tool_call_format_name(format)))
        << name;
  }
}

TEST(ToolCallFormat, ThePromptOpensReasoningWhenItEndsInThink) {
  EXPECT_TRUE(prompt_opens_reasoning("<|im_start|>assistant\n<think>\n"));
  EXPECT_FALSE(prompt_opens_reasoning("<|im_start|>assistant\n<think>\n\n</think>\n\n"));
  EXPECT_FALSE(prompt_opens_reasoning("<|im_start|>assistant\n"));
}

TEST(ToolCallFormat, NamesRoundTrip) {
  for (const char* name : {"none", "hermes", "qwen3_coder", "llama3_json", "mistral", "gemma3"}) {
    auto f = parse_tool_call_format(name);
    ASSERT_TRUE(f.ok()) << name;
    EXPECT_STREQ(tool_call_format_name(*f), name);
  }
  EXPECT_FALSE(parse_tool_call_format("hermes2").ok());
}

}  // namespace
}  // namespace keel::server
