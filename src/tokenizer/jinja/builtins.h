// Jinja filters, tests and the Python methods of str, dict and list that templates call.
#pragma once

#include <string>

#include "tokenizer/jinja/value.h"

namespace keel::jinja {

bool is_known_filter(const std::string& name);
bool is_known_test(const std::string& name);

Result<Value> apply_filter(Interpreter& in, const std::string& name, const Value& input, CallArgs& args);
Result<bool> apply_test(Interpreter& in, const std::string& name, const Value& input, CallArgs& args);

// The bound method `obj.name`, or an undefined Value if `obj` has no such method.
Value bound_method(const Value& obj, const std::string& name);

}  // namespace keel::jinja
