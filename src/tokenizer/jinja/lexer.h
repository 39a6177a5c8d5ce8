// Splits a template into tokens the way jinja2's lexer does: text, {{ }}, {% %} and the expression tokens
// inside them, applying whitespace control (`-`, `+`) and trim_blocks / lstrip_blocks on the way.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"

namespace keel::jinja {

struct LexOptions {
  bool trim_blocks = true;    // transformers renders chat templates with both on
  bool lstrip_blocks = true;
};

struct Token {
  enum class Type { kText, kVarBegin, kVarEnd, kBlockBegin, kBlockEnd, kName, kString, kInt, kFloat, kOp, kEof };
  Type type;
  std::string text;  // for kString the unescaped value
  int line = 0;
  int column = 0;
};

// The template's error message: "chat template line 12, column 5: unknown filter 'foo'".
Status template_error(int line, int column, const std::string& what);

Result<std::vector<Token>> lex(const std::string& source, const LexOptions& options);

}  // namespace keel::jinja
