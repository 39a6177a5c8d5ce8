// OutputParser: a completion's text, as it arrives in arbitrary pieces (after stop strings), split into what the
// APIs send apart — plain text, reasoning (<think>…</think>) and tool calls (id and name once, then the
// arguments JSON in pieces). Markup never reaches the client: only text that could still be the start of a
// marker is held back, so a tag split across tokens at any byte is never shown. Output that only looks like a
// call (malformed markup) comes out as the text it is: nothing is dropped.
//
// The result depends only on the concatenated input, never on how it was split: feeding a text whole or byte by
// byte gives the same events once merged (output_parser_test checks every split of real model outputs).
//
//   OutputParser parser({.tools = ToolCallFormat::kHermes, .reasoning = ReasoningFormat::kThink});
//   for (const OutputEvent& e : parser.feed(piece)) ...;
//   for (const OutputEvent& e : parser.finish()) ...;
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/tool_call_format.h"

namespace keel::server {

struct OutputEvent {
  enum class Kind {
    kText,           // `text`: plain content
    kReasoning,      // `text`: reasoning content
    kCallBegin,      // `index`, `id`, `name`: a call starts (its arguments follow)
    kCallArguments,  // `index`, `text`: the next piece of the call's arguments JSON
    kCallEnd,        // `index`: the call's arguments are complete
  };
  Kind kind = Kind::kText;
  std::string text;
  int index = -1;  // the call's index in this completion, from 0
  std::string id, name;

  bool operator==(const OutputEvent&) const = default;
};

struct OutputParserOptions {
  ToolCallFormat tools = ToolCallFormat::kNone;  // kNone: no call parsing (no tools, or tool_choice "none")
  ReasoningFormat reasoning = ReasoningFormat::kNone;
  bool starts_in_reasoning = false;  // the prompt opened <think> (prompt_opens_reasoning)
  bool parallel_calls = true;        // false: the parser closes after the first complete call
  // The request's tools, OpenAI shape ([{"type": "function", "function": {name, parameters}}]): qwen3_coder reads
  // parameter types from them; llama3_json takes a message-long JSON object as a call only when it names one.
  nlohmann::ordered_json tools_json = nullptr;
  std::string id_prefix = "call_";  // "toolu_" for Anthropic
  // Call ids; default: id_prefix + 24 random alphanumerics.
  std::function<std::string()> new_id;
};

class ToolCallParser;
class CallSink;

class OutputParser {
 public:
  explicit OutputParser(OutputParserOptions options);
  ~OutputParser();
  OutputParser(OutputParser&&) noexcept;

  std::vector<OutputEvent> feed(std::string_view text);
  // The end of the output: flushes held-back text; an unfinished call ends with the arguments it has.
  std::vector<OutputEvent> finish();

  // After the first complete call when parallel_calls is false: later input is ignored, and the generation
  // can stop.
  bool closed() const;
  int calls() const;  // calls begun so far

  // Markers of this parser's format that may be single special tokens, which the detokenizer must then keep.
  std::vector<std::string> special_markers() const { return tool_call_syntax(options_.tools).special_markers; }

 private:
  void reason(std::string_view text);
  void content(std::string_view text);

  OutputParserOptions options_;
  std::unique_ptr<CallSink> sink_;
  std::unique_ptr<ToolCallParser> tools_;
  enum class Phase { kStart, kReasoning, kContent } phase_;
  std::string held_;  // a possible <think> / </think> prefix
  std::string reasoning_ws_;  // trailing whitespace of the reasoning, dropped at </think>
  bool reasoning_started_ = false;
};

// What a whole completion said, for a non-streamed answer.
struct OutputSummary {
  struct Call {
    std::string id, name, arguments;
  };
  std::string text, reasoning;
  std::vector<Call> calls;
};
OutputSummary summarize(const std::vector<OutputEvent>& events);
// Appends `more` to `events`, merging a text / reasoning / arguments event into the previous one of its kind.
void append_events(std::vector<OutputEvent>* events, std::vector<OutputEvent> more);

}  // namespace keel::server
