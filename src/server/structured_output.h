// Structured output on the HTTP side: OpenAI's response_format read into an OutputConstraint, a forcing
// tool_choice (tool_call_format.h's ToolChoice, kRequired / kNamed) made into one, and the constraint turned into
// the request's token mask (grammar/grammar.h) when the request is admitted.
#pragma once

#include <memory>
#include <string>

#include "engine/request.h"
#include "grammar/grammar.h"
#include "server/api.h"
#include "server/tool_call_format.h"

namespace keel::server {

// OpenAI's response_format: {"type": "text"} (nothing), {"type": "json_object"}, or {"type": "json_schema",
// "json_schema": {"name", "schema", "strict", "description"}}; also the Responses API's flat text.format,
// {"type": "json_schema", "name", "schema", "strict"}. `where` names the field in errors ("response_format",
// "text.format"). Sets spec->constraint, or leaves it for "text". The schema itself is checked when compiled.
Status read_response_format(const json& value, const std::string& where, GenerationSpec* spec);

// The constraint a forcing tool_choice puts on the output (a call of any of spec.tools, or of the named one; it
// replaces response_format: the output is the call); nothing for auto / none.
void apply_tool_choice(GenerationSpec* spec);

// How `format` writes a call, for the grammar; kInvalidArgument naming tool_choice for a format whose calls a
// grammar cannot force yet (qwen3_coder's XML parameters, gemma3's Python calls).
Result<grammar::ToolCallForm> tool_call_form(ToolCallFormat format);

// The constraint's mask: compiled (or found in the compiler's cache) against the served vocabulary. A schema outside
// grammar/schema_subset.h's subset is kInvalidArgument naming the field and the keyword (a 400).
Result<std::shared_ptr<engine::TokenMask>> constraint_mask(const OutputConstraint& constraint, const json& tools,
                                                           const grammar::ToolCallForm& form,
                                                           grammar::GrammarCompiler& compiler);

}  // namespace keel::server
