// tool_choice as each API spells it, read into one ToolChoice.
#include "server/request_fields.h"
#include "server/tool_call_format.h"

namespace keel::server {

namespace {

bool names_a_tool(const json& tools, const std::string& name) {
  if (!tools.is_array()) return false;
  for (const json& t : tools) {
    if (t.is_object() && t.contains("function") && t["function"].is_object() && t["function"].value("name", "") == name) {
      return true;
    }
  }
  return false;
}

Status needs_tools(const json& tools, const char* field, const std::string& what) {
  if (!tools.is_array() || tools.empty()) return invalid_argument("{}: {} needs tools", field, what);
  return Status();
}

}  // namespace

Status read_openai_tool_choice(const json& body, const json& tools, ToolChoice* choice, bool* parallel) {
  KEEL_RETURN_IF_ERROR(read_bool(body, "parallel_tool_calls", parallel));
  if (!has(body, "tool_choice")) return Status();
  const json& tc = body["tool_choice"];
  if (tc.is_string()) {
    const std::string mode = tc.get<std::string>();
    if (mode == "none") {
      choice->mode = ToolChoice::Mode::kNone;
    } else if (mode == "auto") {
      choice->mode = ToolChoice::Mode::kAuto;
    } else if (mode == "required") {
      KEEL_RETURN_IF_ERROR(needs_tools(tools, "tool_choice", "\"required\""));
      choice->mode = ToolChoice::Mode::kRequired;
    } else {
      return invalid_argument("tool_choice: expected \"none\", \"auto\", \"required\" or {{\"type\": \"function\", "
                              "\"function\": {{\"name\": ...}}}}, got \"{}\"", mode);
    }
    return Status();
  }
  if (!tc.is_object() || tc.value("type", json()) != "function" || !tc.contains("function") ||
      !tc["function"].is_object() || !tc["function"].contains("name") || !tc["function"]["name"].is_string()) {
    return invalid_argument("tool_choice: expected \"none\", \"auto\", \"required\" or {{\"type\": \"function\", "
                            "\"function\": {{\"name\": ...}}}}, got {}", describe(tc));
  }
  const std::string name = tc["function"]["name"].get<std::string>();
  if (!names_a_tool(tools, name)) {
    return invalid_argument("tool_choice.function.name: \"{}\" is not one of the request's tools", name);
  }
  choice->mode = ToolChoice::Mode::kNamed;
  choice->name = name;
  return Status();
}

Status read_anthropic_tool_choice(const json& body, const json& tools, ToolChoice* choice, bool* parallel) {
  if (!has(body, "tool_choice")) return Status();
  const json& tc = body["tool_choice"];
  if (!tc.is_object() || !tc.contains("type") || !tc["type"].is_string()) {
    return invalid_argument("tool_choice: expected an object {{\"type\": \"auto\" | \"any\" | \"tool\" | \"none\"}}, "
                            "got {}", describe(tc));
  }
  bool disable_parallel = false;
  if (Status s = read_bool(tc, "disable_parallel_tool_use", &disable_parallel); !s.ok()) {
    return invalid_argument("tool_choice.{}", s.message());
  }
  *parallel = !disable_parallel;
  const std::string type = tc["type"].get<std::string>();
  if (type == "auto") {
    choice->mode = ToolChoice::Mode::kAuto;
  } else if (type == "none") {
    choice->mode = ToolChoice::Mode::kNone;
  } else if (type == "any") {
    KEEL_RETURN_IF_ERROR(needs_tools(tools, "tool_choice.type", "\"any\""));
    choice->mode = ToolChoice::Mode::kRequired;
  } else if (type == "tool") {
    if (!tc.contains("name") || !tc["name"].is_string()) {
      return invalid_argument("tool_choice.name: required (a string) with type \"tool\"");
    }
    const std::string name = tc["name"].get<std::string>();
    if (!names_a_tool(tools, name)) {
      return invalid_argument("tool_choice.name: \"{}\" is not one of the request's tools", name);
    }
    choice->mode = ToolChoice::Mode::kNamed;
    choice->name = name;
  } else {
    return invalid_argument("tool_choice.type: expected \"auto\", \"any\", \"tool\" or \"none\", got \"{}\"", type);
  }
  return Status();
}

}  // namespace keel::server
