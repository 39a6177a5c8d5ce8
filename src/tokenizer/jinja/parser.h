// Builds the syntax tree from tokens, following jinja2's grammar and operator precedence.
#pragma once

#include <string>

#include "tokenizer/jinja/ast.h"
#include "tokenizer/jinja/lexer.h"

namespace keel::jinja {

Result<Body> parse(const std::string& source, const LexOptions& options);

}  // namespace keel::jinja
