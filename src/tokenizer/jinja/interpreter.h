// Runs a parsed template: statements write to an output string, expressions evaluate to Values.
// Scoping follows jinja2: `for` bodies and macros get their own frame, `if` does not, so a `set` inside a
// loop does not leak out of it (templates use `namespace` for that).
#pragma once

#include <map>
#include <memory>
#include <string>

#include "tokenizer/jinja/ast.h"

namespace keel::jinja {

struct Frame {
  std::map<std::string, Value> vars;
  Frame* parent = nullptr;
};

class Interpreter {
 public:
  // `globals` are the template's variables (messages, tools, ...) and functions (raise_exception, ...).
  explicit Interpreter(std::map<std::string, Value> globals);

  Result<std::string> render(const Body& body);

  // Used by filters that take a filter or test name (map, select, selectattr).
  Result<Value> call_value(const Value& callee, CallArgs& args, const std::string& what);

 private:
  enum class Flow { kNormal, kBreak, kContinue };

  Result<Flow> exec(const Body& body, Frame& frame, std::string& out);
  Result<Flow> exec_stmt(const Stmt& s, Frame& frame, std::string& out);
  Status exec_for(const Stmt& s, Frame& frame, std::string& out);
  Status exec_set(const Stmt& s, Frame& frame);
  Value make_macro(const Stmt& s, Frame& frame, const Body* caller_body, Frame* caller_frame);

  Result<Value> eval(const Expr& e, Frame& frame);
  Result<Value> eval_binary(const Expr& e, Frame& frame);
  Result<Value> eval_compare(const Expr& e, Frame& frame);
  Result<Value> eval_call(const Expr& e, Frame& frame);
  Result<Value> eval_filter(const Expr& e, Value input, Frame& frame);
  Result<CallArgs> eval_args(const Expr& e, size_t first, Frame& frame);
  Value lookup(const std::string& name, Frame& frame);

  Frame root_;
};

// Python getattr / getitem as jinja2's sandbox does them: attributes (methods) first for `.`, items first
// for `[]`. A missing one is an Undefined that remembers why.
Result<Value> get_attr(const Value& obj, const std::string& name);
Result<Value> get_item(const Value& obj, const Value& key);
Result<Value> slice(const Value& obj, const Value& start, const Value& stop, const Value& step);
// Python `in`.
Result<bool> contains(const Value& container, const Value& item);
// The items a `for` loop walks: list items, dict keys, string characters; undefined is empty.
Result<std::vector<Value>> iterate(const Value& v);

}  // namespace keel::jinja
