#include "tokenizer/jinja/template.h"

#include "tokenizer/jinja/interpreter.h"
#include "tokenizer/jinja/parser.h"

namespace keel::jinja {

Result<Template> Template::parse(const std::string& source, const LexOptions& options) {
  KEEL_ASSIGN_OR_RETURN(Body body, jinja::parse(source, options));
  Template t;
  t.body_ = std::make_shared<const Body>(std::move(body));
  return t;
}

Result<std::string> Template::render(std::map<std::string, Value> vars) const {
  Interpreter interpreter(std::move(vars));
  return interpreter.render(*body_);
}

}  // namespace keel::jinja
