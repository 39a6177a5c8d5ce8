// The JSON Schema subset keel enforces (docs/HTTP.md, "Structured output"): what xgrammar turns into a grammar
// exactly. A schema with anything else is refused before compiling, naming the keyword, rather than enforced in
// part: a client that asked for uniqueItems must not get duplicates and a 200.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace keel::grammar {

// kInvalidArgument for the first keyword outside the subset, with `where` (the request field) and the JSON
// pointer of the schema that holds it: `response_format.json_schema.schema: keyword "uniqueItems" is not
// supported (at /properties/tags)`. Annotations (title, description, default, examples, $comment, ...) and
// extension keys "x-..." pass.
Status check_schema(const nlohmann::ordered_json& schema, const std::string& where);

}  // namespace keel::grammar
