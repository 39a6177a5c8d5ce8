// A parsed Jinja template, rendered as jinja2 renders it for transformers (trim_blocks, lstrip_blocks,
// ImmutableSandboxedEnvironment's attribute rules, default Undefined).
#pragma once

#include <map>
#include <memory>
#include <string>

#include "tokenizer/jinja/ast.h"
#include "tokenizer/jinja/lexer.h"

namespace keel::jinja {

class Template {
 public:
  // Syntax errors (and unknown filters or tests) are reported here with their line and column.
  static Result<Template> parse(const std::string& source, const LexOptions& options = {});

  // `vars` holds the template's variables and functions; runtime errors name their line and column.
  Result<std::string> render(std::map<std::string, Value> vars) const;

 private:
  std::shared_ptr<const Body> body_;
};

}  // namespace keel::jinja
