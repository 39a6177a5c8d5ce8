#include "tokenizer/jinja/template.h"

#include <chrono>

#include "tokenizer/jinja/interpreter.h"
#include "tokenizer/jinja/parser.h"

namespace keel::jinja {

Result<Template> Template::parse(const std::string& source, const LexOptions& options, const RenderBudget& budget) {
  KEEL_ASSIGN_OR_RETURN(Body body, jinja::parse(source, options, budget.max_parse_depth));
  Template t;
  t.body_ = std::make_shared<const Body>(std::move(body));
  t.budget_ = budget;
  return t;
}

Result<std::string> Template::render(std::map<std::string, Value> vars, std::function<int64_t()> now_micros) const {
  if (!now_micros) {
    now_micros = [] {
      using namespace std::chrono;
      return static_cast<int64_t>(duration_cast<microseconds>(steady_clock::now().time_since_epoch()).count());
    };
  }
  Interpreter interpreter(std::move(vars), budget_, std::move(now_micros));
  return interpreter.render(*body_);
}

}  // namespace keel::jinja
