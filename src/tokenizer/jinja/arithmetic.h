// Python's binary arithmetic on template values (+ - * / // % **), with the render budget applied where one
// operation can build something large: `'a' * n`, `[x] * n`, concatenation, and `**` with a large exponent.
#pragma once

#include <string>

#include "tokenizer/jinja/budget.h"
#include "tokenizer/jinja/value.h"

namespace keel::jinja {

Result<Value> arithmetic(const std::string& op, const Value& a, const Value& b, const RenderBudget& budget);

}  // namespace keel::jinja
