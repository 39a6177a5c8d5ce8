// A parsed Jinja template, rendered as jinja2 renders it for transformers (trim_blocks, lstrip_blocks,
// ImmutableSandboxedEnvironment's attribute rules, default Undefined).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "tokenizer/jinja/ast.h"
#include "tokenizer/jinja/budget.h"
#include "tokenizer/jinja/lexer.h"

namespace keel::jinja {

class Template {
 public:
  // Syntax errors (and unknown filters or tests) are reported here with their line and column; `budget`
  // bounds the parse and every later render.
  static Result<Template> parse(const std::string& source, const LexOptions& options = {},
                                const RenderBudget& budget = {});

  // `vars` holds the template's variables and functions; runtime errors name their line and column.
  // `now_micros` is the clock of the wall-time budget (a monotonic one; null: std::chrono::steady_clock).
  Result<std::string> render(std::map<std::string, Value> vars,
                             std::function<int64_t()> now_micros = nullptr) const;

  const RenderBudget& budget() const { return budget_; }

 private:
  std::shared_ptr<const Body> body_;
  RenderBudget budget_;
};

}  // namespace keel::jinja
