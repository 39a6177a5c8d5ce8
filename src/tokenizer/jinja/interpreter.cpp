#include "tokenizer/jinja/interpreter.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "tokenizer/jinja/arithmetic.h"
#include "tokenizer/jinja/builtins.h"
#include "tokenizer/jinja/lexer.h"

namespace keel::jinja {
namespace {

// Errors from helpers carry no position; the innermost expression that saw them adds its own.
Status located(int line, int column, const Status& s) {
  if (s.ok() || s.message().rfind("chat template line ", 0) == 0) return s;
  return template_error(line, column, s.message());
}

#define KEEL_AT(node, expr)                                          \
  ({                                                                  \
    auto keel_r_ = (expr);                                            \
    if (!keel_r_.ok()) return located((node).line, (node).column, keel_r_.status()); \
    std::move(keel_r_).value();                                       \
  })

Status undefined_error(const Value& v) { return invalid_argument("{}", v.undefined_hint()); }

// The clock is read once per this many evaluations (and on every loop iteration): often enough to stop within
// microseconds of the deadline, rarely enough to cost nothing next to the evaluations themselves.
constexpr int64_t kClockEvery = 64;

}  // namespace

Interpreter::Interpreter(std::map<std::string, Value> globals, const RenderBudget& budget,
                         std::function<int64_t()> now_micros)
    : budget_(budget), now_micros_(std::move(now_micros)) {
  root_.vars = std::move(globals);
  auto set_default = [&](const char* name, Value v) {
    if (!root_.vars.count(name)) root_.vars[name] = std::move(v);
  };
  set_default("namespace", Value::callable("namespace", [](Interpreter&, CallArgs& a) -> Result<Value> {
                Value ns = Value::dict();
                ns.as_dict().is_namespace = true;
                for (const auto& p : a.positional) {
                  if (!p.is_dict()) return invalid_argument("namespace() takes keyword arguments or a dict");
                  for (const auto& [k, v] : p.as_dict().items) ns.as_dict().set(k, v);
                }
                for (const auto& [k, v] : a.keyword) ns.as_dict().set(Value(k), v);
                return ns;
              }));
  set_default("dict", Value::callable("dict", [](Interpreter&, CallArgs& a) -> Result<Value> {
                Value d = Value::dict();
                for (const auto& p : a.positional) {
                  if (p.is_dict()) {
                    for (const auto& [k, v] : p.as_dict().items) d.as_dict().set(k, v);
                  }
                }
                for (const auto& [k, v] : a.keyword) d.as_dict().set(Value(k), v);
                return d;
              }));
  set_default("range", Value::callable("range", [](Interpreter& in, CallArgs& a) -> Result<Value> {
                int64_t start = 0, stop = 0, step = 1;
                for (const auto& p : a.positional) {
                  if (!p.is_int() && !p.is_bool()) return invalid_argument("range() arguments must be integers");
                }
                if (a.positional.size() == 1) {
                  stop = a.positional[0].as_int();
                } else if (a.positional.size() >= 2) {
                  start = a.positional[0].as_int();
                  stop = a.positional[1].as_int();
                  if (a.positional.size() >= 3) step = a.positional[2].as_int();
                } else {
                  return invalid_argument("range expected at least 1 argument, got 0");
                }
                if (step == 0) return invalid_argument("range() arg 3 must not be zero");
                // Its length before building it: range(10**12) must fail, not allocate.
                const __int128 span = static_cast<__int128>(stop) - start;
                const __int128 length = step > 0 ? (span > 0 ? (span + step - 1) / step : 0)
                                                 : (span < 0 ? (-span + (-static_cast<__int128>(step)) - 1) /
                                                                   (-static_cast<__int128>(step))
                                                             : 0);
                if (length > in.budget().max_range_length) {
                  return budget_exceeded("range-length", in.budget().max_range_length);
                }
                std::vector<Value> items;
                for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) items.emplace_back(i);
                return Value::list(std::move(items));
              }));
}

Status Interpreter::check_string(size_t bytes) const {
  if (bytes <= budget_.max_string_bytes) return Status();
  return budget_exceeded("string-bytes", static_cast<int64_t>(budget_.max_string_bytes));
}

Status Interpreter::check_clock(int line, int column) {
  if (now_micros_() <= deadline_micros_) return Status();
  return located(line, column, budget_exceeded("wall-time", budget_.max_wall_micros));
}

Status Interpreter::enter(int line, int column) {
  if (++depth_ > budget_.max_depth) return located(line, column, budget_exceeded("recursion-depth", budget_.max_depth));
  if (++evaluations_ % kClockEvery == 0) return check_clock(line, column);
  return Status();
}

Status Interpreter::count_iteration(int line, int column) {
  if (++loop_iterations_ > budget_.max_loop_iterations) {
    return located(line, column, budget_exceeded("loop-iteration", budget_.max_loop_iterations));
  }
  return check_clock(line, column);
}

Result<std::string> Interpreter::render(const Body& body) {
  deadline_micros_ = now_micros_() + budget_.max_wall_micros;
  std::string out;
  KEEL_ASSIGN_OR_RETURN(Flow flow, exec(body, root_, out));
  (void)flow;
  return out;
}

Result<Value> Interpreter::call_value(const Value& callee, CallArgs& args, const std::string& what) {
  if (callee.is_undefined()) return undefined_error(callee);
  if (!callee.is_callable()) return invalid_argument("'{}' object is not callable", callee.type_name());
  return callee.as_callable().fn(*this, args);
}

Result<Interpreter::Flow> Interpreter::exec(const Body& body, Frame& frame, std::string& out) {
  for (const auto& s : body) {
    KEEL_ASSIGN_OR_RETURN(Flow flow, exec_stmt(*s, frame, out));
    // `out` is the render's output or a body being captured (a macro's, a block set's): bounded alike.
    if (out.size() > budget_.max_output_bytes) {
      return located(s->line, s->column, budget_exceeded("output-bytes", static_cast<int64_t>(budget_.max_output_bytes)));
    }
    if (flow != Flow::kNormal) return flow;
  }
  return Flow::kNormal;
}

Result<Interpreter::Flow> Interpreter::exec_stmt(const Stmt& s, Frame& frame, std::string& out) {
  KEEL_RETURN_IF_ERROR(enter(s.line, s.column));
  Result<Flow> flow = exec_node(s, frame, out);
  leave();
  return flow;
}

Result<Interpreter::Flow> Interpreter::exec_node(const Stmt& s, Frame& frame, std::string& out) {
  switch (s.kind) {
    case Stmt::Kind::kText: out += s.text; return Flow::kNormal;
    case Stmt::Kind::kEmit: {
      KEEL_ASSIGN_OR_RETURN(Value v, eval(*s.expr, frame));
      std::string text = v.str(budget_.max_string_bytes);
      if (Status st = check_string(text.size()); !st.ok()) return located(s.line, s.column, st);
      out += text;
      return Flow::kNormal;
    }
    case Stmt::Kind::kIf: {
      for (size_t i = 0; i < s.conds.size(); ++i) {
        KEEL_ASSIGN_OR_RETURN(Value c, eval(*s.conds[i], frame));
        if (c.truthy()) return exec(s.bodies[i], frame, out);
      }
      return exec(s.else_body, frame, out);
    }
    case Stmt::Kind::kFor: KEEL_RETURN_IF_ERROR(exec_for(s, frame, out)); return Flow::kNormal;
    case Stmt::Kind::kSet: KEEL_RETURN_IF_ERROR(exec_set(s, frame)); return Flow::kNormal;
    case Stmt::Kind::kMacro: frame.vars[s.text] = make_macro(s, frame, nullptr, nullptr); return Flow::kNormal;
    case Stmt::Kind::kCallBlock: {
      Value caller = make_macro(s, frame, &s.body, &frame);
      KEEL_ASSIGN_OR_RETURN(Value callee, eval(*s.expr->args[0], frame));
      KEEL_ASSIGN_OR_RETURN(CallArgs args, eval_args(*s.expr, 1, frame));
      args.keyword.emplace_back("caller", caller);
      auto v = call_value(callee, args, "");
      if (!v.ok()) return located(s.line, s.column, v.status());
      out += v->str();
      return Flow::kNormal;
    }
    case Stmt::Kind::kFilterBlock: {
      std::string captured;
      KEEL_ASSIGN_OR_RETURN(Flow flow, exec(s.body, frame, captured));
      (void)flow;
      Value v(captured);
      for (const auto& f : s.filters) {
        KEEL_ASSIGN_OR_RETURN(v, eval_filter(*f, v, frame));
      }
      out += v.str();
      return Flow::kNormal;
    }
    case Stmt::Kind::kBreak: return Flow::kBreak;
    case Stmt::Kind::kContinue: return Flow::kContinue;
  }
  return Flow::kNormal;
}

Status Interpreter::exec_for(const Stmt& s, Frame& frame, std::string& out) {
  KEEL_ASSIGN_OR_RETURN(Value seq, eval(*s.expr, frame));
  auto items_r = iterate(seq);
  if (!items_r.ok()) return located(s.expr->line, s.expr->column, items_r.status());
  std::vector<Value> items = std::move(items_r).value();
  auto bind = [&](Frame& f, const Value& item) -> Status {
    if (!s.unpack) {
      f.vars[s.targets[0]] = item;
      return Status();
    }
    KEEL_ASSIGN_OR_RETURN(std::vector<Value> parts, iterate(item));
    if (parts.size() != s.targets.size()) {
      return template_error(s.line, s.column,
                            fmt::format("cannot unpack {} values into {} loop variables", parts.size(),
                                        s.targets.size()));
    }
    for (size_t i = 0; i < parts.size(); ++i) f.vars[s.targets[i]] = parts[i];
    return Status();
  };
  if (s.cond) {
    std::vector<Value> kept;
    for (const auto& item : items) {
      KEEL_RETURN_IF_ERROR(count_iteration(s.line, s.column));
      Frame f{{}, &frame};
      KEEL_RETURN_IF_ERROR(bind(f, item));
      KEEL_ASSIGN_OR_RETURN(Value c, eval(*s.cond, f));
      if (c.truthy()) kept.push_back(item);
    }
    items = std::move(kept);
  }
  if (items.empty()) {
    KEEL_ASSIGN_OR_RETURN(Flow flow, exec(s.else_body, frame, out));
    (void)flow;
    return Status();
  }
  const int64_t n = static_cast<int64_t>(items.size());
  for (int64_t i = 0; i < n; ++i) {
    KEEL_RETURN_IF_ERROR(count_iteration(s.line, s.column));
    Frame f{{}, &frame};
    KEEL_RETURN_IF_ERROR(bind(f, items[static_cast<size_t>(i)]));
    Value loop = Value::dict();
    Dict& d = loop.as_dict();
    d.set("index", Value(i + 1));
    d.set("index0", Value(i));
    d.set("revindex", Value(n - i));
    d.set("revindex0", Value(n - i - 1));
    d.set("first", Value(i == 0));
    d.set("last", Value(i == n - 1));
    d.set("length", Value(n));
    d.set("depth", Value(1));  // only recursive loops (unsupported) go deeper
    d.set("depth0", Value(0));
    d.set("previtem", i > 0 ? items[static_cast<size_t>(i - 1)] : Value::undefined("there is no previous item"));
    d.set("nextitem", i + 1 < n ? items[static_cast<size_t>(i + 1)] : Value::undefined("there is no next item"));
    d.set("cycle", Value::callable("cycle", [i](Interpreter&, CallArgs& a) -> Result<Value> {
            if (a.positional.empty()) return invalid_argument("no items for cycling given");
            return a.positional[static_cast<size_t>(i) % a.positional.size()];
          }));
    f.vars["loop"] = loop;
    KEEL_ASSIGN_OR_RETURN(Flow flow, exec(s.body, f, out));
    if (flow == Flow::kBreak) break;
  }
  return Status();
}

Status Interpreter::exec_set(const Stmt& s, Frame& frame) {
  Value v;
  if (s.expr) {
    KEEL_ASSIGN_OR_RETURN(v, eval(*s.expr, frame));
  } else {
    std::string captured;
    KEEL_ASSIGN_OR_RETURN(Flow flow, exec(s.body, frame, captured));
    (void)flow;
    v = Value(captured);
    for (const auto& f : s.filters) {
      KEEL_ASSIGN_OR_RETURN(v, eval_filter(*f, v, frame));
    }
  }
  if (!s.attr.empty()) {
    Value ns = lookup(s.targets[0], frame);
    if (!ns.is_dict() || !ns.as_dict().is_namespace) {
      return template_error(s.line, s.column, "cannot assign attribute on non-namespace object");
    }
    ns.as_dict().set(Value(s.attr), v);
    return Status();
  }
  if (!s.unpack) {
    frame.vars[s.targets[0]] = v;
    return Status();
  }
  auto parts = iterate(v);
  if (!parts.ok()) return located(s.line, s.column, parts.status());
  if (parts->size() != s.targets.size()) {
    return template_error(s.line, s.column,
                          fmt::format("cannot unpack {} values into {} names", parts->size(), s.targets.size()));
  }
  for (size_t i = 0; i < parts->size(); ++i) frame.vars[s.targets[i]] = (*parts)[i];
  return Status();
}

// A macro (or the `caller` of a call block) renders its body in a fresh frame over the frame it was defined in.
Value Interpreter::make_macro(const Stmt& s, Frame& frame, const Body* caller_body, Frame* caller_frame) {
  const Stmt* def = &s;
  Frame* scope = caller_frame ? caller_frame : &root_;
  const Body* body = caller_body ? caller_body : &s.body;
  std::string name = caller_body ? "caller" : s.text;
  return Value::callable(name, [def, scope, body, name](Interpreter& in, CallArgs& a) -> Result<Value> {
    Frame f{{}, scope};
    size_t n = def->targets.size();
    if (a.positional.size() > n) {
      return invalid_argument("macro '{}' takes not more than {} argument(s)", name, n);
    }
    for (size_t i = 0; i < n; ++i) {
      Value v;
      if (i < a.positional.size()) {
        v = a.positional[i];
      } else if (a.has(SIZE_MAX, def->targets[i].c_str())) {
        v = a.get(SIZE_MAX, def->targets[i].c_str());
      } else if (i < def->defaults.size() && def->defaults[i]) {
        KEEL_ASSIGN_OR_RETURN(v, in.eval(*def->defaults[i], f));
      } else {
        v = Value::undefined(fmt::format("parameter '{}' was not provided", def->targets[i]));
      }
      f.vars[def->targets[i]] = v;
    }
    if (a.has(SIZE_MAX, "caller")) f.vars["caller"] = a.get(SIZE_MAX, "caller");
    std::string out;
    KEEL_ASSIGN_OR_RETURN(Flow flow, in.exec(*body, f, out));
    (void)flow;
    return Value(out);
  });
}

Value Interpreter::lookup(const std::string& name, Frame& frame) {
  for (Frame* f = &frame; f; f = f->parent) {
    auto it = f->vars.find(name);
    if (it != f->vars.end()) return it->second;
  }
  return Value::undefined(fmt::format("'{}' is undefined", name));
}

Result<CallArgs> Interpreter::eval_args(const Expr& e, size_t first, Frame& frame) {
  CallArgs args;
  for (size_t i = first; i < e.args.size(); ++i) {
    KEEL_ASSIGN_OR_RETURN(Value v, eval(*e.args[i], frame));
    args.positional.push_back(std::move(v));
  }
  for (const auto& [k, ex] : e.kwargs) {
    KEEL_ASSIGN_OR_RETURN(Value v, eval(*ex, frame));
    args.keyword.emplace_back(k, std::move(v));
  }
  return args;
}

Result<Value> Interpreter::eval(const Expr& e, Frame& frame) {
  KEEL_RETURN_IF_ERROR(enter(e.line, e.column));
  Result<Value> v = eval_node(e, frame);
  leave();
  // Whatever built it (a filter, a method, a macro), no single string outgrows the budget.
  if (v.ok() && v->is_string()) {
    if (Status st = check_string(v->as_string().size()); !st.ok()) return located(e.line, e.column, st);
  }
  return v;
}

Result<Value> Interpreter::eval_node(const Expr& e, Frame& frame) {
  switch (e.kind) {
    case Expr::Kind::kLiteral: return e.value;
    case Expr::Kind::kName: return lookup(e.name, frame);
    case Expr::Kind::kList:
    case Expr::Kind::kTuple: {
      std::vector<Value> items;
      for (const auto& a : e.args) {
        KEEL_ASSIGN_OR_RETURN(Value v, eval(*a, frame));
        items.push_back(std::move(v));
      }
      return Value::list(std::move(items), e.kind == Expr::Kind::kTuple);
    }
    case Expr::Kind::kDict: {
      Value d = Value::dict();
      for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
        KEEL_ASSIGN_OR_RETURN(Value k, eval(*e.args[i], frame));
        KEEL_ASSIGN_OR_RETURN(Value v, eval(*e.args[i + 1], frame));
        d.as_dict().set(std::move(k), std::move(v));
      }
      return d;
    }
    case Expr::Kind::kAttr: {
      KEEL_ASSIGN_OR_RETURN(Value obj, eval(*e.args[0], frame));
      return KEEL_AT(e, get_attr(obj, e.name));
    }
    case Expr::Kind::kItem: {
      KEEL_ASSIGN_OR_RETURN(Value obj, eval(*e.args[0], frame));
      KEEL_ASSIGN_OR_RETURN(Value key, eval(*e.args[1], frame));
      return KEEL_AT(e, get_item(obj, key));
    }
    case Expr::Kind::kSlice: {
      KEEL_ASSIGN_OR_RETURN(Value obj, eval(*e.args[0], frame));
      Value parts[3] = {Value::none(), Value::none(), Value::none()};
      for (int i = 0; i < 3; ++i) {
        if (e.args[static_cast<size_t>(i) + 1]) {
          KEEL_ASSIGN_OR_RETURN(parts[i], eval(*e.args[static_cast<size_t>(i) + 1], frame));
        }
      }
      return KEEL_AT(e, slice(obj, parts[0], parts[1], parts[2]));
    }
    case Expr::Kind::kCall: return eval_call(e, frame);
    case Expr::Kind::kFilter: {
      KEEL_ASSIGN_OR_RETURN(Value input, eval(*e.args[0], frame));
      return eval_filter(e, std::move(input), frame);
    }
    case Expr::Kind::kTest: {
      KEEL_ASSIGN_OR_RETURN(Value input, eval(*e.args[0], frame));
      KEEL_ASSIGN_OR_RETURN(CallArgs args, eval_args(e, 1, frame));
      bool r = KEEL_AT(e, apply_test(*this, e.name, input, args));
      return Value(e.negated ? !r : r);
    }
    case Expr::Kind::kUnary: {
      KEEL_ASSIGN_OR_RETURN(Value v, eval(*e.args[0], frame));
      if (e.name == "not") return Value(!v.truthy());
      if (v.is_undefined()) return located(e.line, e.column, undefined_error(v));
      if (!v.is_number()) {
        return template_error(e.line, e.column, fmt::format("bad operand type for unary {}: '{}'", e.name, v.type_name()));
      }
      if (e.name == "+") return v.is_float() ? v : Value(v.as_int());
      if (v.is_float()) return Value(-v.as_float());
      if (v.as_int() == std::numeric_limits<int64_t>::min()) {
        return template_error(e.line, e.column, "integer overflow: -(-9223372036854775808) does not fit in 64 bits");
      }
      return Value(-v.as_int());
    }
    case Expr::Kind::kBinary: return eval_binary(e, frame);
    case Expr::Kind::kCompare: return eval_compare(e, frame);
    case Expr::Kind::kCond: {
      KEEL_ASSIGN_OR_RETURN(Value c, eval(*e.args[0], frame));
      if (c.truthy()) return eval(*e.args[1], frame);
      if (e.args[2]) return eval(*e.args[2], frame);
      return Value::undefined("the inline if-expression evaluated to false and no else section was defined");
    }
  }
  return template_error(e.line, e.column, "unknown expression");
}

Result<Value> Interpreter::eval_binary(const Expr& e, Frame& frame) {
  KEEL_ASSIGN_OR_RETURN(Value a, eval(*e.args[0], frame));
  if (e.name == "and") return a.truthy() ? eval(*e.args[1], frame) : Result<Value>(a);
  if (e.name == "or") return a.truthy() ? Result<Value>(a) : eval(*e.args[1], frame);
  KEEL_ASSIGN_OR_RETURN(Value b, eval(*e.args[1], frame));
  if (e.name == "~") {
    std::string left = a.str(budget_.max_string_bytes), right = b.str(budget_.max_string_bytes);
    if (Status st = check_string(left.size() + right.size()); !st.ok()) return located(e.line, e.column, st);
    return Value(left + right);
  }
  if (e.name == "%" && a.is_string()) {
    CallArgs args;
    if (b.is_list() && b.as_list().is_tuple) {
      args.positional = b.as_list().items;
    } else {
      args.positional.push_back(b);
    }
    return KEEL_AT(e, apply_filter(*this, "format", a, args));
  }
  return KEEL_AT(e, arithmetic(e.name, a, b, budget_));
}

Result<Value> Interpreter::eval_compare(const Expr& e, Frame& frame) {
  KEEL_ASSIGN_OR_RETURN(Value left, eval(*e.args[0], frame));
  for (size_t i = 0; i < e.ops.size(); ++i) {
    KEEL_ASSIGN_OR_RETURN(Value right, eval(*e.args[i + 1], frame));
    const std::string& op = e.ops[i];
    bool r = false;
    if (op == "==") {
      r = equals(left, right);
    } else if (op == "!=") {
      r = !equals(left, right);
    } else if (op == "in" || op == "notin") {
      r = KEEL_AT(e, contains(right, left));
      if (op == "notin") r = !r;
    } else {
      if (left.is_undefined()) return located(e.line, e.column, undefined_error(left));
      if (right.is_undefined()) return located(e.line, e.column, undefined_error(right));
      if (op == "<") r = KEEL_AT(e, less_than(left, right));
      if (op == ">") r = KEEL_AT(e, less_than(right, left));
      if (op == "<=") r = !KEEL_AT(e, less_than(right, left));
      if (op == ">=") r = !KEEL_AT(e, less_than(left, right));
    }
    if (!r) return Value(false);
    left = std::move(right);
  }
  return Value(true);
}

Result<Value> Interpreter::eval_call(const Expr& e, Frame& frame) {
  KEEL_ASSIGN_OR_RETURN(Value callee, eval(*e.args[0], frame));
  KEEL_ASSIGN_OR_RETURN(CallArgs args, eval_args(e, 1, frame));
  if (!callee.is_callable() && !callee.is_undefined() && e.args[0]->kind == Expr::Kind::kName) {
    return template_error(e.line, e.column, fmt::format("'{}' is not callable", e.args[0]->name));
  }
  auto r = call_value(callee, args, "");
  if (!r.ok()) return located(e.line, e.column, r.status());
  return r;
}

Result<Value> Interpreter::eval_filter(const Expr& e, Value input, Frame& frame) {
  KEEL_ASSIGN_OR_RETURN(CallArgs args, eval_args(e, 1, frame));
  return KEEL_AT(e, apply_filter(*this, e.name, input, args));
}

}  // namespace keel::jinja
