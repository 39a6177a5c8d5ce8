// How a model writes tool calls and reasoning in its output text, and what a request asked for (tool_choice,
// parallel calls). The output parser (output_parser.h) reads these formats; a grammar that forces a call writes
// one through tool_call_syntax() / render_tool_call(), so what it forces is exactly what the parser reads back.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace keel::server {

// `keel serve --tool-call-parser NAME`; the default is picked from the chat template (detect_tool_call_format).
enum class ToolCallFormat {
  kNone,        // "none": tool calls are never parsed; the output is text
  kHermes,      // "hermes": Hermes, Qwen2.5, Qwen3 — <tool_call>{"name": N, "arguments": {...}}</tool_call>
  kQwen3Coder,  // "qwen3_coder": Qwen3-Coder, Qwen3.5 — <tool_call><function=N><parameter=P>v</parameter>...
  kLlama3Json,  // "llama3_json": Llama 3.x — a message that is {"name": N, "parameters": {...}}, or <|python_tag|>
  kMistral,     // "mistral": [TOOL_CALLS][{"name": N, "arguments": {...}}] or [TOOL_CALLS]N[ARGS]{...}
  kGemma3,      // "gemma3": a ```tool_code fence holding name(arg=value) Python calls or the JSON object
};

const char* tool_call_format_name(ToolCallFormat format);
// "none", "hermes", ... (as tool_call_format_name); anything else is kInvalidArgument listing the names.
Result<ToolCallFormat> parse_tool_call_format(std::string_view name);
// From a chat template's source: <function= → qwen3_coder, <tool_call> → hermes, [TOOL_CALLS] → mistral,
// <|python_tag|> or Llama's "parameters" instruction → llama3_json, ```tool_code / <start_of_turn> → gemma3;
// a template with no tool syntax (ChatML, the demo model) gets hermes, the most common convention.
ToolCallFormat detect_tool_call_format(std::string_view template_source);

// `--reasoning-parser`: kThink reads <think>…</think> (Qwen3, QwQ, DeepSeek-R1). Auto: kThink when the template
// mentions <think>.
enum class ReasoningFormat { kNone, kThink };
const char* reasoning_format_name(ReasoningFormat format);
Result<ReasoningFormat> parse_reasoning_format(std::string_view name);  // "none" | "think" (alias "qwen3")
ReasoningFormat detect_reasoning_format(std::string_view template_source);
// True when a rendered prompt leaves the model inside reasoning: it ends with <think> (and whitespace), as
// Qwen3.5, QwQ and DeepSeek-R1 templates open it in the generation prompt.
bool prompt_opens_reasoning(std::string_view prompt);

// How one call is written, for a grammar forcing a call: literally `begin`, then the body, then `end`.
//   kJsonObject:    {"name": "<name>", "<arguments_key>": <arguments JSON>}
//   kXmlParameters: <function=<name>>\n<parameter=P>\nVALUE\n</parameter>\n...</function>   (VALUE: a string
//                   raw, anything else as JSON text)
//   kNameThenJson:  <name>[ARGS]<arguments JSON>
//   kPythonCall:    <name>(p=<Python literal>, ...)
// `special_markers`: markers that are single special tokens in their model's vocabulary ([TOOL_CALLS],
// <|python_tag|>): a grammar must allow those token ids, the detokenizer keeps them (Completion does).
struct ToolCallSyntax {
  enum class Body { kJsonObject, kXmlParameters, kNameThenJson, kPythonCall };
  Body body = Body::kJsonObject;
  std::string begin, end;
  std::string arguments_key;  // kJsonObject: "arguments" or "parameters"
  std::vector<std::string> special_markers;
};
ToolCallSyntax tool_call_syntax(ToolCallFormat format);  // kNone: an empty begin/end JSON object syntax
// One call written in `format`'s canonical form (what the format's parser reads back as exactly this call).
// `arguments` is a JSON object.
std::string render_tool_call(ToolCallFormat format, std::string_view name, const nlohmann::ordered_json& arguments);

// A request's tool_choice: OpenAI "none" | "auto" | "required" | {"type":"function","function":{"name"}};
// Anthropic {"type": "auto" | "any" | "tool" | "none", "name"}. kNone: calls are not parsed (the output stays
// text). kRequired / kNamed are enforced by a grammar; the output parser reads the calls as for kAuto.
struct ToolChoice {
  enum class Mode { kAuto, kNone, kRequired, kNamed };
  Mode mode = Mode::kAuto;
  std::string name;  // kNamed
};

// tool_choice and parallel_tool_calls of an OpenAI body; tool_choice (with disable_parallel_tool_use) of an
// Anthropic one. `tools` is the request's tools in OpenAI's shape (a named tool must be one of them). A bad value
// is kInvalidArgument naming the field.
Status read_openai_tool_choice(const nlohmann::ordered_json& body, const nlohmann::ordered_json& tools,
                               ToolChoice* choice, bool* parallel);
Status read_anthropic_tool_choice(const nlohmann::ordered_json& body, const nlohmann::ordered_json& tools,
                                  ToolChoice* choice, bool* parallel);

}  // namespace keel::server
