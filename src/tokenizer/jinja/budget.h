// What parsing and rendering one chat template may spend. A model directory's template is code from outside
// keel: without bounds one could recurse until the stack overflows, loop a billion times or double a string
// until memory runs out. Each limit is far above what real templates use (the Qwen3, Llama 3 and Gemma 3
// templates of the golden tests nest < 30 levels, run a few hundred iterations and write kilobytes), and the
// error names the budget that was hit: "chat template exceeded the loop-iteration budget (1000000)".
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "base/status.h"

namespace keel::jinja {

struct RenderBudget {
  // Parser: statements and expressions open at once, and the depth of any one expression's tree.
  int max_parse_depth = 256;
  // Interpreter: statements, expressions and macro calls being evaluated at once (a macro calling itself
  // spends ~4 per call). 512 keeps the C++ stack under ~2 MiB, a quarter of a thread's default.
  int max_depth = 512;
  // Bodies of for loops run, summed over the whole render.
  int64_t max_loop_iterations = 1'000'000;
  // Items one range() may produce.
  int64_t max_range_length = 1'000'000;
  // Items of any single list built by `+` or `*`.
  int64_t max_list_items = 1'000'000;
  // Bytes of any single string built (`'a' * n`, `s ~ s`, joins, filters, a macro's output). Twice
  // the 32 MiB request body cap, so a message of any size a client may send still renders.
  size_t max_string_bytes = 64u << 20;
  // Bytes the render writes.
  size_t max_output_bytes = 64u << 20;
  // Integer exponent of `**` (a float exponent is computed by pow and cannot run long).
  int64_t max_exponent = 1024;
  // Wall time of one render, read from the caller's clock (env::Env::now_micros for chat templates).
  int64_t max_wall_micros = 5'000'000;
  // Nesting of the JSON values handed to a template (messages, tools, kwargs) and of values walked by
  // ==, <, repr and tojson (a list appended to itself is infinitely deep).
  int max_value_depth = 128;
};

// "chat template exceeded the <name> budget (<limit>)", kResourceExhausted.
Status budget_exceeded(const char* name, int64_t limit);

}  // namespace keel::jinja
