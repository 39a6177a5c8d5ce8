#include "server/tool_call_format.h"

#include <array>

#include <fmt/format.h>

namespace keel::server {

namespace {

using json = nlohmann::ordered_json;

constexpr std::array<std::pair<ToolCallFormat, const char*>, 6> kFormats{{
    {ToolCallFormat::kNone, "none"},
    {ToolCallFormat::kHermes, "hermes"},
    {ToolCallFormat::kQwen3Coder, "qwen3_coder"},
    {ToolCallFormat::kLlama3Json, "llama3_json"},
    {ToolCallFormat::kMistral, "mistral"},
    {ToolCallFormat::kGemma3, "gemma3"},
}};

bool contains(std::string_view s, std::string_view what) { return s.find(what) != std::string_view::npos; }

std::string dump(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

// A JSON value as a Python literal (what Gemma's tool_code calls use): JSON strings are valid Python strings.
std::string python_literal(const json& value) {
  if (value.is_boolean()) return value.get<bool>() ? "True" : "False";
  if (value.is_null()) return "None";
  if (value.is_array()) {
    std::string out = "[";
    for (size_t i = 0; i < value.size(); ++i) out += (i ? ", " : "") + python_literal(value[i]);
    return out + "]";
  }
  if (value.is_object()) {
    std::string out = "{";
    bool first = true;
    for (const auto& [k, v] : value.items()) {
      out += (first ? "" : ", ") + dump(json(k)) + ": " + python_literal(v);
      first = false;
    }
    return out + "}";
  }
  return dump(value);
}

}  // namespace

const char* tool_call_format_name(ToolCallFormat format) {
  for (const auto& [f, name] : kFormats) {
    if (f == format) return name;
  }
  return "none";
}

Result<ToolCallFormat> parse_tool_call_format(std::string_view name) {
  std::string names;
  for (const auto& [f, n] : kFormats) {
    if (name == n) return f;
    names += names.empty() ? n : std::string(", ") + n;
  }
  return invalid_argument("--tool-call-parser {}: unknown parser (expected auto or one of {})", name, names);
}

ToolCallFormat detect_tool_call_format(std::string_view source) {
  // Qwen3-Coder's template also writes <tool_call>, so <function= is looked for first.
  if (contains(source, "<function=")) return ToolCallFormat::kQwen3Coder;
  if (contains(source, "<tool_call>")) return ToolCallFormat::kHermes;
  if (contains(source, "[TOOL_CALLS]")) return ToolCallFormat::kMistral;
  if (contains(source, "<|python_tag|>") ||
      (contains(source, "<|start_header_id|>") && contains(source, "\"parameters\""))) {
    return ToolCallFormat::kLlama3Json;
  }
  if (contains(source, "tool_code") || contains(source, "<start_of_turn>")) return ToolCallFormat::kGemma3;
  return ToolCallFormat::kHermes;
}

const char* reasoning_format_name(ReasoningFormat format) {
  return format == ReasoningFormat::kThink ? "think" : "none";
}

Result<ReasoningFormat> parse_reasoning_format(std::string_view name) {
  if (name == "none") return ReasoningFormat::kNone;
  if (name == "think" || name == "qwen3" || name == "deepseek_r1") return ReasoningFormat::kThink;
  return invalid_argument("--reasoning-parser {}: unknown parser (expected auto, none or think)", name);
}

ReasoningFormat detect_reasoning_format(std::string_view source) {
  return contains(source, "<think>") ? ReasoningFormat::kThink : ReasoningFormat::kNone;
}

bool prompt_opens_reasoning(std::string_view prompt) {
  size_t end = prompt.find_last_not_of(" \t\r\n");
  if (end == std::string_view::npos) return false;
  constexpr std::string_view kOpen = "<think>";
  return end + 1 >= kOpen.size() && prompt.substr(end + 1 - kOpen.size(), kOpen.size()) == kOpen;
}

ToolCallSyntax tool_call_syntax(ToolCallFormat format) {
  using Body = ToolCallSyntax::Body;
  switch (format) {
    case ToolCallFormat::kHermes:
      return {Body::kJsonObject, "<tool_call>\n", "\n</tool_call>", "arguments", {}};
    case ToolCallFormat::kQwen3Coder:
      return {Body::kXmlParameters, "<tool_call>\n", "\n</tool_call>", "", {}};
    case ToolCallFormat::kLlama3Json:
      return {Body::kJsonObject, "", "", "parameters", {"<|python_tag|>"}};
    case ToolCallFormat::kMistral:
      return {Body::kNameThenJson, "[TOOL_CALLS]", "", "", {"[TOOL_CALLS]", "[ARGS]"}};
    case ToolCallFormat::kGemma3:
      return {Body::kPythonCall, "```tool_code\n", "\n```", "", {}};
    case ToolCallFormat::kNone:
      break;
  }
  return {Body::kJsonObject, "", "", "arguments", {}};
}

std::string render_tool_call(ToolCallFormat format, std::string_view name, const json& arguments) {
  ToolCallSyntax syntax = tool_call_syntax(format);
  std::string body;
  switch (syntax.body) {
    case ToolCallSyntax::Body::kJsonObject:
      body = dump(json{{"name", std::string(name)}, {syntax.arguments_key, arguments}});
      break;
    case ToolCallSyntax::Body::kXmlParameters:
      body = fmt::format("<function={}>\n", name);
      for (const auto& [p, v] : arguments.items()) {
        body += fmt::format("<parameter={}>\n{}\n</parameter>\n", p, v.is_string() ? v.get<std::string>() : dump(v));
      }
      body += "</function>";
      break;
    case ToolCallSyntax::Body::kNameThenJson:
      body = fmt::format("{}[ARGS]{}", name, dump(arguments));
      break;
    case ToolCallSyntax::Body::kPythonCall: {
      body = std::string(name) + "(";
      bool first = true;
      for (const auto& [p, v] : arguments.items()) {
        body += (first ? "" : ", ") + p + "=" + python_literal(v);
        first = false;
      }
      body += ")";
      break;
    }
  }
  return syntax.begin + body + syntax.end;
}

}  // namespace keel::server
