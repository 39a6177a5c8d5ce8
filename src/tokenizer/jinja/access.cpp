// Attribute and item access, slicing, `in` and iteration with Python's semantics.
#include <fmt/format.h>

#include "tokenizer/jinja/builtins.h"
#include "tokenizer/jinja/interpreter.h"

namespace keel::jinja {
namespace {

std::string object_type_repr(const Value& obj) {
  if (obj.is_none()) return "None";
  return obj.type_name() + " object";
}

Value missing(const Value& obj, const Value& key) {
  if (key.is_string()) {
    return Value::undefined(fmt::format("'{}' has no attribute '{}'", object_type_repr(obj), key.as_string()));
  }
  return Value::undefined(fmt::format("'{}' has no element {}", object_type_repr(obj), key.repr()));
}

// Python's index normalisation: negative counts from the end; out of range gives -1.
int64_t normalize_index(int64_t i, size_t n) {
  if (i < 0) i += static_cast<int64_t>(n);
  if (i < 0 || i >= static_cast<int64_t>(n)) return -1;
  return i;
}

}  // namespace

Result<Value> get_attr(const Value& obj, const std::string& name) {
  if (obj.is_undefined()) return invalid_argument("{}", obj.undefined_hint());
  if (obj.is_dict() && obj.as_dict().is_namespace) {
    if (const Value* v = obj.as_dict().find(Value(name))) return *v;
    return missing(obj, Value(name));
  }
  Value method = bound_method(obj, name);
  if (!method.is_undefined()) return method;
  if (obj.is_dict()) {
    if (const Value* v = obj.as_dict().find(Value(name))) return *v;
  }
  return missing(obj, Value(name));
}

Result<Value> get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) return invalid_argument("{}", obj.undefined_hint());
  if (obj.is_dict()) {
    if (const Value* v = obj.as_dict().find(key)) return *v;
  } else if (obj.is_list() && (key.is_int() || key.is_bool())) {
    const auto& items = obj.as_list().items;
    int64_t i = normalize_index(key.as_int(), items.size());
    if (i >= 0) return items[static_cast<size_t>(i)];
    return missing(obj, key);
  } else if (obj.is_string() && (key.is_int() || key.is_bool())) {
    std::vector<std::string> chars = utf8_chars(obj.as_string());
    int64_t i = normalize_index(key.as_int(), chars.size());
    if (i >= 0) return Value(chars[static_cast<size_t>(i)]);
    return missing(obj, key);
  }
  if (key.is_string()) {
    Value method = bound_method(obj, key.as_string());
    if (!method.is_undefined()) return method;
  }
  return missing(obj, key);
}

Result<Value> slice(const Value& obj, const Value& start_v, const Value& stop_v, const Value& step_v) {
  if (obj.is_undefined()) return invalid_argument("{}", obj.undefined_hint());
  for (const Value* v : {&start_v, &stop_v, &step_v}) {
    if (!v->is_none() && !v->is_int() && !v->is_bool()) {
      return invalid_argument("slice indices must be integers or None, not {}", v->type_name());
    }
  }
  std::vector<Value> items;
  std::vector<std::string> chars;
  size_t n = 0;
  if (obj.is_list()) {
    n = obj.as_list().items.size();
  } else if (obj.is_string()) {
    chars = utf8_chars(obj.as_string());
    n = chars.size();
  } else {
    return invalid_argument("'{}' object is not subscriptable", obj.type_name());
  }
  const int64_t len = static_cast<int64_t>(n);
  int64_t step = step_v.is_none() ? 1 : step_v.as_int();
  if (step == 0) return invalid_argument("slice step cannot be zero");
  auto clamp = [&](const Value& v, int64_t dflt) {
    if (v.is_none()) return dflt;
    int64_t i = v.as_int();
    if (i < 0) i += len;
    if (step > 0) return std::clamp<int64_t>(i, 0, len);
    return std::clamp<int64_t>(i, -1, len - 1);
  };
  int64_t start = clamp(start_v, step > 0 ? 0 : len - 1);
  int64_t stop = clamp(stop_v, step > 0 ? len : -1);
  std::string s;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    if (obj.is_list()) {
      items.push_back(obj.as_list().items[static_cast<size_t>(i)]);
    } else {
      s += chars[static_cast<size_t>(i)];
    }
  }
  if (obj.is_string()) return Value(s);
  return Value::list(std::move(items), obj.as_list().is_tuple);
}

Result<bool> contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::kString:
      if (!item.is_string()) {
        return invalid_argument("'in <string>' requires string as left operand, not {}", item.type_name());
      }
      return container.as_string().find(item.as_string()) != std::string::npos;
    case Value::Kind::kList:
      for (const auto& v : container.as_list().items) {
        if (equals(v, item)) return true;
      }
      return false;
    case Value::Kind::kDict: return container.as_dict().find(item) != nullptr;
    case Value::Kind::kUndefined: return false;
    default: return invalid_argument("argument of type '{}' is not iterable", container.type_name());
  }
}

Result<std::vector<Value>> iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined: return std::vector<Value>{};
    case Value::Kind::kList: return v.as_list().items;
    case Value::Kind::kDict: {
      std::vector<Value> keys;
      for (const auto& [k, val] : v.as_dict().items) keys.push_back(k);
      return keys;
    }
    case Value::Kind::kString: {
      std::vector<Value> out;
      for (auto& c : utf8_chars(v.as_string())) out.emplace_back(std::move(c));
      return out;
    }
    default: return invalid_argument("'{}' object is not iterable", v.type_name());
  }
}

}  // namespace keel::jinja
