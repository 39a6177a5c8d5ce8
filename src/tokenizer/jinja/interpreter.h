// Runs a parsed template: statements write to an output string, expressions evaluate to Values.
// Scoping follows jinja2: `for` bodies and macros get their own frame, `if` does not, so a `set` inside a
// loop does not leak out of it (templates use `namespace` for that).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "tokenizer/jinja/ast.h"
#include "tokenizer/jinja/budget.h"

namespace keel::jinja {

struct Frame {
  std::map<std::string, Value> vars;
  Frame* parent = nullptr;
};

class Interpreter {
 public:
  // `globals` are the template's variables (messages, tools, ...) and functions (raise_exception, ...);
  // `now_micros` is the monotonic clock the wall-time budget reads.
  Interpreter(std::map<std::string, Value> globals, const RenderBudget& budget, std::function<int64_t()> now_micros);

  Result<std::string> render(const Body& body);

  // Used by filters that take a filter or test name (map, select, selectattr).
  Result<Value> call_value(const Value& callee, CallArgs& args, const std::string& what);

  // For filters and methods that build strings: fails once `bytes` is past the string-bytes budget.
  const RenderBudget& budget() const { return budget_; }
  Status check_string(size_t bytes) const;

 private:
  enum class Flow { kNormal, kBreak, kContinue };

  // One level of evaluation entered (depth budget; every 64th also looks at the clock) and left.
  Status enter(int line, int column);
  void leave() { --depth_; }
  // One loop iteration (iteration budget and the clock).
  Status count_iteration(int line, int column);
  Status check_clock(int line, int column);

  Result<Flow> exec(const Body& body, Frame& frame, std::string& out);
  Result<Flow> exec_stmt(const Stmt& s, Frame& frame, std::string& out);
  Result<Flow> exec_node(const Stmt& s, Frame& frame, std::string& out);
  Status exec_for(const Stmt& s, Frame& frame, std::string& out);
  Status exec_set(const Stmt& s, Frame& frame);
  Value make_macro(const Stmt& s, Frame& frame, const Body* caller_body, Frame* caller_frame);

  Result<Value> eval(const Expr& e, Frame& frame);
  Result<Value> eval_node(const Expr& e, Frame& frame);
  Result<Value> eval_binary(const Expr& e, Frame& frame);
  Result<Value> eval_compare(const Expr& e, Frame& frame);
  Result<Value> eval_call(const Expr& e, Frame& frame);
  Result<Value> eval_filter(const Expr& e, Value input, Frame& frame);
  Result<CallArgs> eval_args(const Expr& e, size_t first, Frame& frame);
  Value lookup(const std::string& name, Frame& frame);

  Frame root_;
  RenderBudget budget_;
  std::function<int64_t()> now_micros_;
  int64_t deadline_micros_ = 0;
  int depth_ = 0;
  int64_t evaluations_ = 0;
  int64_t loop_iterations_ = 0;
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
