// Values of the Jinja interpreter, modelled on the Python objects jinja2 manipulates: lists and dicts are
// shared references (a `namespace` attribute set or `append` is seen by every holder), dicts keep insertion
// order (tojson must print keys as Python does), and printing follows Python's str()/repr().
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "base/status.h"
#include "tokenizer/jinja/budget.h"

namespace keel::jinja {

class Value;
struct CallArgs;
class Interpreter;

// A template can nest lists and dicts as deep as its loop budget allows (`{% set ns.a = [ns.a] %}` a million
// times): both are torn down from a stack, not by recursion (Value::move_children_if_sole_owner).
struct List {
  std::vector<Value> items;
  bool is_tuple = false;
  ~List();
};

struct Dict {
  std::vector<std::pair<Value, Value>> items;  // insertion order, as Python 3.7+ dicts
  bool is_namespace = false;
  ~Dict();

  const Value* find(const Value& key) const;
  Value* find(const Value& key);
  void set(Value key, Value value);
};

// A builtin function, a macro or a bound method. `self` receives the interpreter so macros can run bodies.
struct Callable {
  std::string name;
  std::function<Result<Value>(Interpreter&, CallArgs&)> fn;
};

struct Undefined {
  std::string hint;  // why it is undefined: "'x' is undefined", "'dict object' has no attribute 'y'"
};

class Value {
 public:
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kCallable };

  Value() : v_(Undefined{}) {}
  static Value undefined(std::string hint) {
    Value v;
    v.v_ = Undefined{std::move(hint)};
    return v;
  }
  static Value none() { return Value(nullptr); }
  Value(std::nullptr_t) : v_(std::monostate{}) {}
  Value(bool b) : v_(b) {}
  Value(int i) : v_(int64_t{i}) {}
  Value(int64_t i) : v_(i) {}
  Value(double d) : v_(d) {}
  Value(std::string s) : v_(std::move(s)) {}
  Value(const char* s) : v_(std::string(s)) {}
  Value(std::shared_ptr<List> l) : v_(std::move(l)) {}
  Value(std::shared_ptr<Dict> d) : v_(std::move(d)) {}
  Value(std::shared_ptr<Callable> c) : v_(std::move(c)) {}

  static Value list(std::vector<Value> items = {}, bool tuple = false);
  static Value dict();
  static Value callable(std::string name, std::function<Result<Value>(Interpreter&, CallArgs&)> fn);
  // Nesting deeper than `max_depth` levels is refused: "value nests deeper than 128 levels".
  static Result<Value> from_json(const nlohmann::ordered_json& j, int max_depth = RenderBudget().max_value_depth);

  Kind kind() const;
  bool is_undefined() const { return kind() == Kind::kUndefined; }
  bool is_none() const { return kind() == Kind::kNone; }
  bool is_bool() const { return kind() == Kind::kBool; }
  bool is_int() const { return kind() == Kind::kInt; }
  bool is_float() const { return kind() == Kind::kFloat; }
  bool is_number() const { return is_int() || is_float() || is_bool(); }
  bool is_string() const { return kind() == Kind::kString; }
  bool is_list() const { return kind() == Kind::kList; }
  bool is_dict() const { return kind() == Kind::kDict; }
  bool is_callable() const { return kind() == Kind::kCallable; }

  bool as_bool() const { return std::get<bool>(v_); }
  int64_t as_int() const;  // bools count as 0/1, as in Python
  double as_float() const;  // any number
  const std::string& as_string() const { return std::get<std::string>(v_); }
  List& as_list() const { return *std::get<std::shared_ptr<List>>(v_); }
  Dict& as_dict() const { return *std::get<std::shared_ptr<Dict>>(v_); }
  Callable& as_callable() const { return *std::get<std::shared_ptr<Callable>>(v_); }
  const std::string& undefined_hint() const { return std::get<Undefined>(v_).hint; }

  // When this Value is the only reference to a list or dict, moves its items (and keys) to `out`, leaving it
  // empty: List and Dict destructors use it to destroy deep nesting iteratively.
  void move_children_if_sole_owner(std::vector<Value>& out);

  bool truthy() const;
  // Python's type name for error messages: 'str', 'int', 'list', 'dict', 'NoneType'.
  std::string type_name() const;
  // Python's str(): what `{{ x }}` prints ('' for undefined). A list or dict stops printing once past
  // `max_bytes` (a list holding a list twice, 40 levels down, would print 2^40 items): a result longer than
  // the string-bytes budget means the budget was hit, and the interpreter's checks fail on its size. Lists and
  // dicts nested past RenderBudget::max_value_depth print as [...] / {...}, as Python prints a list that
  // contains itself.
  std::string str(size_t max_bytes = RenderBudget().max_string_bytes) const;
  // Python's repr(): how items print inside a list or dict.
  std::string repr(size_t max_bytes = RenderBudget().max_string_bytes) const;

 private:
  std::variant<Undefined, std::monostate, bool, int64_t, double, std::string, std::shared_ptr<List>,
               std::shared_ptr<Dict>, std::shared_ptr<Callable>>
      v_;
};

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;

  // The argument at `index` or named `name`, else `fallback`.
  Value get(size_t index, const char* name, Value fallback = Value()) const;
  bool has(size_t index, const char* name) const;
};

// Python == between values (1 == 1.0 == True, element-wise lists and dicts). Past
// RenderBudget::max_value_depth levels, nested lists and dicts compare unequal (Python raises RecursionError).
bool equals(const Value& a, const Value& b);
// Python < for numbers, strings and lists; other pairs are a TypeError.
Result<bool> less_than(const Value& a, const Value& b);

// Python's repr(float): shortest round-trip digits, exponent form outside [1e-4, 1e16).
std::string python_float_repr(double d);
// Python's repr(str): quotes chosen as Python does, non-printable characters escaped.
std::string python_string_repr(const std::string& s);
// Python json.dumps arguments; transformers' tojson passes ensure_ascii=False unless told otherwise.
struct JsonOptions {
  int indent = -1;  // -1: everything on one line
  bool sort_keys = false;
  bool ensure_ascii = false;
  std::string item_separator;  // empty: ", " on one line, "," with indent (Python's defaults)
  std::string key_separator = ": ";
  size_t max_bytes = SIZE_MAX;  // past this the dump fails with the string-bytes budget
  int max_depth = RenderBudget().max_value_depth;
};
Result<std::string> python_json_dumps(const Value& v, const JsonOptions& options);

// UTF-8 helpers: Python strings index by code point.
std::vector<std::string> utf8_chars(const std::string& s);
size_t utf8_length(const std::string& s);

}  // namespace keel::jinja
