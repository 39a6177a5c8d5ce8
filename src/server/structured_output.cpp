#include "server/structured_output.h"

#include <algorithm>

#include "server/request_fields.h"

namespace keel::server {

namespace {

using Kind = OutputConstraint::Kind;

// The names of spec.tools (OpenAI's function shape; /v1/messages converts to it).
std::vector<std::string> tool_names(const json& tools) {
  std::vector<std::string> names;
  if (!tools.is_array()) return names;
  for (const json& t : tools)
    if (t.is_object() && t.contains("function") && t["function"].is_object() && t["function"].contains("name") &&
        t["function"]["name"].is_string())
      names.push_back(t["function"]["name"].get<std::string>());
  return names;
}

}  // namespace

Status read_response_format(const json& value, const std::string& where, GenerationSpec* spec) {
  if (!value.is_object()) return invalid_argument("{}: expected an object, got {}", where, describe(value));
  std::string type;
  if (Status s = read_string(value, "type", &type); !s.ok()) return invalid_argument("{}.{}", where, s.message());
  if (type == "text") return Status();
  if (type == "json_object") {
    spec->constraint = OutputConstraint{Kind::kJsonObject, nullptr, where, {}};
    return Status();
  }
  if (type != "json_schema") {
    return invalid_argument("{}.type: expected \"text\", \"json_object\" or \"json_schema\", got {}", where,
                            describe(value.contains("type") ? value["type"] : json(nullptr)));
  }
  // Chat Completions nests the schema's fields under "json_schema"; the Responses API's text.format holds them.
  const bool nested = value.contains("json_schema");
  const json& fields = nested ? value["json_schema"] : value;
  const std::string at = nested ? where + ".json_schema" : where;
  if (!fields.is_object()) return invalid_argument("{}: expected an object, got {}", at, describe(fields));
  for (const char* name : {"name", "description"}) {
    std::string ignored;
    if (Status s = read_string(fields, name, &ignored); !s.ok()) return invalid_argument("{}.{}", at, s.message());
  }
  bool strict = false;  // keel enforces the schema either way
  if (Status s = read_bool(fields, "strict", &strict); !s.ok()) return invalid_argument("{}.{}", at, s.message());
  if (!has(fields, "schema")) return invalid_argument("{}.schema: required", at);
  spec->constraint = OutputConstraint{Kind::kJsonSchema, fields["schema"], at + ".schema", {}};
  return Status();
}

void apply_tool_choice(GenerationSpec* spec) {
  const ToolChoice& choice = spec->tool_choice;
  if (choice.mode != ToolChoice::Mode::kRequired && choice.mode != ToolChoice::Mode::kNamed) return;
  OutputConstraint c;
  c.kind = Kind::kToolCall;
  c.where = "tool_choice";
  c.tool_names = choice.mode == ToolChoice::Mode::kNamed ? std::vector<std::string>{choice.name}
                                                         : tool_names(spec->tools);
  spec->constraint = std::move(c);
}

Result<grammar::ToolCallForm> tool_call_form(ToolCallFormat format) {
  const ToolCallSyntax syntax = tool_call_syntax(format);
  switch (syntax.body) {
    case ToolCallSyntax::Body::kJsonObject:
      return grammar::ToolCallForm{grammar::ToolCallForm::Body::kJsonObject, syntax.begin, syntax.end,
                                   syntax.arguments_key};
    case ToolCallSyntax::Body::kNameThenJson:
      return grammar::ToolCallForm{grammar::ToolCallForm::Body::kNameThenJson, syntax.begin, syntax.end, ""};
    case ToolCallSyntax::Body::kXmlParameters:
    case ToolCallSyntax::Body::kPythonCall:
      break;
  }
  return invalid_argument("tool_choice: a forced call is not supported for the {} tool-call format (the model's "
                          "--tool-call-parser); use \"auto\"",
                          tool_call_format_name(format));
}

Result<std::shared_ptr<engine::TokenMask>> constraint_mask(const OutputConstraint& constraint, const json& tools,
                                                           const grammar::ToolCallForm& form,
                                                           grammar::GrammarCompiler& compiler) {
  auto compile = [&]() -> Result<std::shared_ptr<const grammar::Compiled>> {
    switch (constraint.kind) {
      case Kind::kJsonObject:
        return compiler.json_object();
      case Kind::kJsonSchema:
        return compiler.json_schema(constraint.schema, constraint.where);
      case Kind::kToolCall:
        break;
    }
    std::vector<grammar::ToolSchema> schemas;
    for (size_t i = 0; i < tools.size(); i++) {
      const json& fn = tools[i]["function"];
      const std::string name = fn.value("name", "");
      if (std::find(constraint.tool_names.begin(), constraint.tool_names.end(), name) == constraint.tool_names.end())
        continue;
      schemas.push_back({name, fn.contains("parameters") ? fn["parameters"] : json(nullptr),
                         fmt::format("tools[{}].function.parameters", i)});
    }
    return compiler.tool_call(schemas, form);
  };
  KEEL_ASSIGN_OR_RETURN(std::shared_ptr<const grammar::Compiled> compiled, compile());
  return grammar::make_mask(std::move(compiled));
}

}  // namespace keel::server
