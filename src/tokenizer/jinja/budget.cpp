#include "tokenizer/jinja/budget.h"

namespace keel::jinja {

Status budget_exceeded(const char* name, int64_t limit) {
  return resource_exhausted("chat template exceeded the {} budget ({})", name, limit);
}

}  // namespace keel::jinja
