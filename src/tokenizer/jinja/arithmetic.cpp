#include "tokenizer/jinja/arithmetic.h"

#include <cmath>

namespace keel::jinja {
namespace {

// b == -1 is the caller's (INT64_MIN / -1 traps).
int64_t py_floordiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

int64_t py_mod(int64_t a, int64_t b) {
  int64_t m = a % b;
  if (m != 0 && ((m < 0) != (b < 0))) m += b;
  return m;
}

Status undefined_error(const Value& v) { return invalid_argument("{}", v.undefined_hint()); }

// Template ints are 64-bit where Python's are unbounded: a result that does not fit is an error, never a wrapped
// value (found by fuzz/jinja_template: 2 ** 80 overflowed int64_t, undefined behaviour).
Status int_overflow(const std::string& op, int64_t a, int64_t b) {
  return invalid_argument("integer overflow: {} {} {} does not fit in 64 bits", a, op, b);
}

// + - * // % ** on two ints, as Python computes them while the result fits.
Result<Value> int_arithmetic(const std::string& op, int64_t a, int64_t b, const RenderBudget& budget) {
  int64_t r = 0;
  if (op == "+") return __builtin_add_overflow(a, b, &r) ? Result<Value>(int_overflow(op, a, b)) : Value(r);
  if (op == "-") return __builtin_sub_overflow(a, b, &r) ? Result<Value>(int_overflow(op, a, b)) : Value(r);
  if (op == "*") return __builtin_mul_overflow(a, b, &r) ? Result<Value>(int_overflow(op, a, b)) : Value(r);
  if (op == "//" || op == "%") {
    if (b == -1) {  // a / -1 traps for INT64_MIN; a % -1 is 0
      if (op == "%") return Value(int64_t{0});
      return __builtin_sub_overflow(int64_t{0}, a, &r) ? Result<Value>(int_overflow(op, a, b)) : Value(r);
    }
    return Value(op == "//" ? py_floordiv(a, b) : py_mod(a, b));
  }
  // "**" with b >= 0
  if (b > budget.max_exponent) return budget_exceeded("exponent", budget.max_exponent);
  r = 1;
  for (int64_t i = 0; i < b; ++i) {
    if (__builtin_mul_overflow(r, a, &r)) return int_overflow(op, a, b);
  }
  return Value(r);
}

Status check_bytes(size_t bytes, const RenderBudget& budget) {
  if (bytes <= budget.max_string_bytes) return Status();
  return budget_exceeded("string-bytes", static_cast<int64_t>(budget.max_string_bytes));
}

// `count` copies of something `unit` long, checked before anything is built (`'a' * 10**12` must not try).
Status check_repeat(int64_t count, size_t unit, size_t limit, const char* budget_name) {
  if (count <= 0 || unit == 0) return Status();
  if (static_cast<uint64_t>(count) > limit / unit) return budget_exceeded(budget_name, static_cast<int64_t>(limit));
  return Status();
}

}  // namespace

Result<Value> arithmetic(const std::string& op, const Value& a, const Value& b, const RenderBudget& budget) {
  if (a.is_undefined()) return undefined_error(a);
  if (b.is_undefined()) return undefined_error(b);
  if (a.is_number() && b.is_number()) {
    bool f = a.is_float() || b.is_float();
    if (op == "/" || op == "//" || op == "%") {
      if (b.as_float() == 0) return invalid_argument("division by zero");
    }
    if (!f && (op == "+" || op == "-" || op == "*" || op == "//" || op == "%" || (op == "**" && b.as_int() >= 0))) {
      return int_arithmetic(op, a.as_int(), b.as_int(), budget);
    }
    if (op == "+") return Value(a.as_float() + b.as_float());
    if (op == "-") return Value(a.as_float() - b.as_float());
    if (op == "*") return Value(a.as_float() * b.as_float());
    if (op == "/") return Value(a.as_float() / b.as_float());
    if (op == "//") return Value(std::floor(a.as_float() / b.as_float()));
    if (op == "%") {
      double m = std::fmod(a.as_float(), b.as_float());
      if (m != 0 && ((m < 0) != (b.as_float() < 0))) m += b.as_float();
      return Value(m);
    }
    if (op == "**") return Value(std::pow(a.as_float(), b.as_float()));
  }
  if (op == "+" && a.is_string() && b.is_string()) {
    KEEL_RETURN_IF_ERROR(check_bytes(a.as_string().size() + b.as_string().size(), budget));
    return Value(a.as_string() + b.as_string());
  }
  if (op == "+" && a.is_list() && b.is_list()) {
    KEEL_RETURN_IF_ERROR(check_repeat(1, a.as_list().items.size() + b.as_list().items.size(),
                                      static_cast<size_t>(budget.max_list_items), "list-items"));
    std::vector<Value> items = a.as_list().items;
    for (const auto& v : b.as_list().items) items.push_back(v);
    return Value::list(std::move(items), a.as_list().is_tuple);
  }
  if (op == "*" && (a.is_string() || a.is_list()) && (b.is_int() || b.is_bool())) {
    return arithmetic(op, b, a, budget);
  }
  if (op == "*" && (a.is_int() || a.is_bool()) && b.is_string()) {
    KEEL_RETURN_IF_ERROR(check_repeat(a.as_int(), b.as_string().size(), budget.max_string_bytes, "string-bytes"));
    std::string r;
    for (int64_t i = 0; i < a.as_int(); ++i) r += b.as_string();
    return Value(r);
  }
  if (op == "*" && (a.is_int() || a.is_bool()) && b.is_list()) {
    KEEL_RETURN_IF_ERROR(check_repeat(a.as_int(), b.as_list().items.size(),
                                      static_cast<size_t>(budget.max_list_items), "list-items"));
    std::vector<Value> items;
    for (int64_t i = 0; i < a.as_int(); ++i) {
      for (const auto& v : b.as_list().items) items.push_back(v);
    }
    return Value::list(std::move(items), b.as_list().is_tuple);
  }
  if (op == "+" && (a.is_string() || a.is_list())) {  // Python's own wording
    return invalid_argument("can only concatenate {} (not \"{}\") to {}", a.type_name(), b.type_name(), a.type_name());
  }
  return invalid_argument("unsupported operand type(s) for {}: '{}' and '{}'", op, a.type_name(), b.type_name());
}

}  // namespace keel::jinja
