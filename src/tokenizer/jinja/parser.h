// Builds the syntax tree from tokens, following jinja2's grammar and operator precedence.
#pragma once

#include <string>

#include "tokenizer/jinja/ast.h"
#include "tokenizer/jinja/lexer.h"

namespace keel::jinja {

// `max_depth` (RenderBudget::max_parse_depth) bounds both the parser's nesting (blocks in blocks, parentheses,
// unary operators) and the depth of every expression tree, however it was built.
Result<Body> parse(const std::string& source, const LexOptions& options, int max_depth);

}  // namespace keel::jinja
