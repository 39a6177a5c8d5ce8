#include "tokenizer/jinja/value.h"

#include <fmt/format.h>
#include <utf8proc.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>
#include <utility>

namespace keel::jinja {

namespace {

void tear_down(std::vector<Value>& pending) {
  while (!pending.empty()) {
    Value v = std::move(pending.back());
    pending.pop_back();
    v.move_children_if_sole_owner(pending);
  }  // each `v` dies here holding no items
}

}  // namespace

List::~List() {
  std::vector<Value> pending;
  pending.swap(items);
  tear_down(pending);
}

Dict::~Dict() {
  std::vector<Value> pending;
  for (auto& [k, v] : items) {
    pending.push_back(std::move(k));
    pending.push_back(std::move(v));
  }
  items.clear();
  tear_down(pending);
}

void Value::move_children_if_sole_owner(std::vector<Value>& out) {
  if (auto* l = std::get_if<std::shared_ptr<List>>(&v_); l && *l && l->use_count() == 1) {
    for (auto& item : (*l)->items) out.push_back(std::move(item));
    (*l)->items.clear();
  } else if (auto* d = std::get_if<std::shared_ptr<Dict>>(&v_); d && *d && d->use_count() == 1) {
    for (auto& [k, v] : (*d)->items) {
      out.push_back(std::move(k));
      out.push_back(std::move(v));
    }
    (*d)->items.clear();
  }
}

const Value* Dict::find(const Value& key) const {
  for (const auto& [k, v] : items) {
    if (equals(k, key)) return &v;
  }
  return nullptr;
}

Value* Dict::find(const Value& key) {
  for (auto& [k, v] : items) {
    if (equals(k, key)) return &v;
  }
  return nullptr;
}

void Dict::set(Value key, Value value) {
  if (Value* existing = find(key)) {
    *existing = std::move(value);
    return;
  }
  items.emplace_back(std::move(key), std::move(value));
}

Value Value::list(std::vector<Value> items, bool tuple) {
  auto l = std::make_shared<List>();
  l->items = std::move(items);
  l->is_tuple = tuple;
  return Value(std::move(l));
}

Value Value::dict() { return Value(std::make_shared<Dict>()); }

Value Value::callable(std::string name, std::function<Result<Value>(Interpreter&, CallArgs&)> fn) {
  return Value(std::make_shared<Callable>(Callable{std::move(name), std::move(fn)}));
}

namespace {

Result<Value> from_json_at(const nlohmann::ordered_json& j, int depth, int max_depth) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null: return Value::none();
    case nlohmann::ordered_json::value_t::boolean: return Value(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer: return Value(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned:
      return Value(static_cast<int64_t>(j.get<uint64_t>()));
    case nlohmann::ordered_json::value_t::number_float: return Value(j.get<double>());
    case nlohmann::ordered_json::value_t::string: return Value(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      if (depth >= max_depth) return invalid_argument("value nests deeper than {} levels", max_depth);
      std::vector<Value> items;
      for (const auto& e : j) {
        KEEL_ASSIGN_OR_RETURN(Value v, from_json_at(e, depth + 1, max_depth));
        items.push_back(std::move(v));
      }
      return Value::list(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      if (depth >= max_depth) return invalid_argument("value nests deeper than {} levels", max_depth);
      Value d = Value::dict();
      for (const auto& [k, v] : j.items()) {
        KEEL_ASSIGN_OR_RETURN(Value item, from_json_at(v, depth + 1, max_depth));
        d.as_dict().items.emplace_back(Value(k), std::move(item));
      }
      return d;
    }
    default: return Value::none();
  }
}

constexpr int kValueDepth = RenderBudget().max_value_depth;

void repr_into(const Value& v, int depth, size_t max_bytes, std::string& out);

}  // namespace

Result<Value> Value::from_json(const nlohmann::ordered_json& j, int max_depth) { return from_json_at(j, 0, max_depth); }

Value::Kind Value::kind() const { return static_cast<Kind>(v_.index()); }

int64_t Value::as_int() const {
  if (is_bool()) return as_bool() ? 1 : 0;
  if (is_float()) return static_cast<int64_t>(std::get<double>(v_));
  return std::get<int64_t>(v_);
}

double Value::as_float() const {
  if (is_float()) return std::get<double>(v_);
  return static_cast<double>(as_int());
}

bool Value::truthy() const {
  switch (kind()) {
    case Kind::kUndefined:
    case Kind::kNone: return false;
    case Kind::kBool: return as_bool();
    case Kind::kInt: return as_int() != 0;
    case Kind::kFloat: return as_float() != 0.0;
    case Kind::kString: return !as_string().empty();
    case Kind::kList: return !as_list().items.empty();
    case Kind::kDict: return as_dict().is_namespace || !as_dict().items.empty();
    case Kind::kCallable: return true;
  }
  return false;
}

std::string Value::type_name() const {
  switch (kind()) {
    case Kind::kUndefined: return "Undefined";
    case Kind::kNone: return "NoneType";
    case Kind::kBool: return "bool";
    case Kind::kInt: return "int";
    case Kind::kFloat: return "float";
    case Kind::kString: return "str";
    case Kind::kList: return as_list().is_tuple ? "tuple" : "list";
    case Kind::kDict: return as_dict().is_namespace ? "Namespace" : "dict";
    case Kind::kCallable: return "function";
  }
  return "object";
}

std::string Value::str(size_t max_bytes) const {
  switch (kind()) {
    case Kind::kUndefined: return "";
    case Kind::kString: return as_string();
    default: return repr(max_bytes);
  }
}

std::string Value::repr(size_t max_bytes) const {
  std::string out;
  repr_into(*this, 0, max_bytes, out);
  return out;
}

namespace {

void repr_into(const Value& v, int depth, size_t max_bytes, std::string& out) {
  if (out.size() > max_bytes) return;
  switch (v.kind()) {
    case Value::Kind::kUndefined: out += "Undefined"; return;
    case Value::Kind::kNone: out += "None"; return;
    case Value::Kind::kBool: out += v.as_bool() ? "True" : "False"; return;
    case Value::Kind::kInt: out += std::to_string(v.as_int()); return;
    case Value::Kind::kFloat: out += python_float_repr(v.as_float()); return;
    case Value::Kind::kString: out += python_string_repr(v.as_string()); return;
    case Value::Kind::kList: {
      const List& l = v.as_list();
      if (depth >= kValueDepth) {
        out += l.is_tuple ? "(...)" : "[...]";
        return;
      }
      out += l.is_tuple ? "(" : "[";
      for (size_t i = 0; i < l.items.size() && out.size() <= max_bytes; ++i) {
        if (i) out += ", ";
        repr_into(l.items[i], depth + 1, max_bytes, out);
      }
      if (l.is_tuple && l.items.size() == 1) out += ",";
      out += l.is_tuple ? ")" : "]";
      return;
    }
    case Value::Kind::kDict: {
      const Dict& d = v.as_dict();
      if (d.is_namespace) out += "<Namespace ";
      if (depth >= kValueDepth) {
        out += "{...}";
      } else {
        out += "{";
        for (size_t i = 0; i < d.items.size() && out.size() <= max_bytes; ++i) {
          if (i) out += ", ";
          repr_into(d.items[i].first, depth + 1, max_bytes, out);
          out += ": ";
          repr_into(d.items[i].second, depth + 1, max_bytes, out);
        }
        out += "}";
      }
      if (d.is_namespace) out += ">";
      return;
    }
    case Value::Kind::kCallable: out += "<function " + v.as_callable().name + ">"; return;
  }
}

// Pairs of lists or dicts already found equal during one comparison: a list holding a list twice, 60 levels
// down, compared with another such list would otherwise walk 2^60 pairs.
using EqualPairs = std::set<std::pair<const void*, const void*>>;

bool equals_at(const Value& a, const Value& b, int depth, EqualPairs& equal);

}  // namespace

Value CallArgs::get(size_t index, const char* name, Value fallback) const {
  if (index < positional.size()) return positional[index];
  for (const auto& [k, v] : keyword) {
    if (k == name) return v;
  }
  return fallback;
}

bool CallArgs::has(size_t index, const char* name) const {
  if (index < positional.size()) return true;
  for (const auto& [k, v] : keyword) {
    if (k == name) return true;
  }
  return false;
}

bool equals(const Value& a, const Value& b) {
  EqualPairs equal;
  return equals_at(a, b, 0, equal);
}

namespace {

bool equals_at(const Value& a, const Value& b, int depth, EqualPairs& equal) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_float() == b.as_float();
    return a.as_int() == b.as_int();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone: return true;
    case Value::Kind::kString: return a.as_string() == b.as_string();
    case Value::Kind::kList: {
      const auto& x = a.as_list().items;
      const auto& y = b.as_list().items;
      if (&x == &y) return true;
      if (x.size() != y.size() || a.as_list().is_tuple != b.as_list().is_tuple) return false;
      if (depth >= kValueDepth) return false;
      if (equal.count({&x, &y})) return true;
      for (size_t i = 0; i < x.size(); ++i) {
        if (!equals_at(x[i], y[i], depth + 1, equal)) return false;
      }
      equal.insert({&x, &y});
      return true;
    }
    case Value::Kind::kDict: {
      const Dict& x = a.as_dict();
      const Dict& y = b.as_dict();
      if (&x == &y) return true;
      if (x.is_namespace || y.is_namespace || x.items.size() != y.items.size()) return false;
      if (depth >= kValueDepth) return false;
      if (equal.count({&x, &y})) return true;
      for (const auto& [k, v] : x.items) {
        const Value* other = y.find(k);
        if (!other || !equals_at(v, *other, depth + 1, equal)) return false;
      }
      equal.insert({&x, &y});
      return true;
    }
    case Value::Kind::kCallable: return &a.as_callable() == &b.as_callable();
    default: return false;
  }
}

Result<bool> less_than_at(const Value& a, const Value& b, int depth, EqualPairs& equal);

}  // namespace

Result<bool> less_than(const Value& a, const Value& b) {
  EqualPairs equal;
  return less_than_at(a, b, 0, equal);
}

namespace {

Result<bool> less_than_at(const Value& a, const Value& b, int depth, EqualPairs& equal) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_float() < b.as_float();
    return a.as_int() < b.as_int();
  }
  if (a.is_string() && b.is_string()) return a.as_string() < b.as_string();  // UTF-8 order = code points
  if (a.is_list() && b.is_list()) {
    const auto& x = a.as_list().items;
    const auto& y = b.as_list().items;
    if (depth >= kValueDepth) return invalid_argument("'<' between lists nested deeper than {} levels", kValueDepth);
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (equals_at(x[i], y[i], depth + 1, equal)) continue;
      return less_than_at(x[i], y[i], depth + 1, equal);
    }
    return x.size() < y.size();
  }
  return invalid_argument("'<' not supported between instances of '{}' and '{}'", a.type_name(),
                          b.type_name());
}

}  // namespace

std::string python_float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  if (d == 0) return std::signbit(d) ? "-0.0" : "0.0";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  // sci looks like "-1.2345e+05": split sign, digits and exponent.
  std::string sign;
  if (sci[0] == '-') {
    sign = "-";
    sci.erase(0, 1);
  }
  size_t e_pos = sci.find('e');
  std::string mantissa = sci.substr(0, e_pos);
  int exponent = std::stoi(sci.substr(e_pos + 1));
  std::string digits;
  for (char c : mantissa) {
    if (c != '.') digits += c;
  }
  int decpt = exponent + 1;  // position of the decimal point relative to the digits
  if (decpt <= -4 || decpt > 16) {
    std::string out = sign + digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    out += fmt::format("e{}{:02d}", exponent < 0 ? '-' : '+', std::abs(exponent));
    return out;
  }
  if (decpt <= 0) return sign + "0." + std::string(-decpt, '0') + digits;
  if (static_cast<size_t>(decpt) >= digits.size()) {
    return sign + digits + std::string(decpt - digits.size(), '0') + ".0";
  }
  return sign + digits.substr(0, decpt) + "." + digits.substr(decpt);
}

namespace {

// Decodes one code point at s[i], advancing i; invalid bytes decode as themselves.
int32_t next_codepoint(const std::string& s, size_t& i) {
  utf8proc_int32_t cp = 0;
  auto n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + i),
                            static_cast<utf8proc_ssize_t>(s.size() - i), &cp);
  if (n <= 0) {
    cp = static_cast<unsigned char>(s[i]);
    n = 1;
  }
  i += static_cast<size_t>(n);
  return cp;
}

bool python_printable(int32_t cp) {
  if (cp < 0x20 || cp == 0x7f) return false;
  if (cp < 0x7f) return true;
  switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CN:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
    case UTF8PROC_CATEGORY_ZS: return false;
    default: return true;
  }
}

}  // namespace

std::string python_string_repr(const std::string& s) {
  bool has_single = s.find('\'') != std::string::npos;
  bool has_double = s.find('"') != std::string::npos;
  char quote = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, quote);
  size_t i = 0;
  while (i < s.size()) {
    size_t start = i;
    int32_t cp = next_codepoint(s, i);
    if (cp == quote || cp == '\\') {
      out += '\\';
      out += static_cast<char>(cp);
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\r') {
      out += "\\r";
    } else if (cp == '\t') {
      out += "\\t";
    } else if (python_printable(cp)) {
      out.append(s, start, i - start);
    } else if (cp < 0x100) {
      out += fmt::format("\\x{:02x}", cp);
    } else if (cp < 0x10000) {
      out += fmt::format("\\u{:04x}", cp);
    } else {
      out += fmt::format("\\U{:08x}", cp);
    }
  }
  out += quote;
  return out;
}

namespace {

void json_string(const std::string& s, bool ensure_ascii, std::string& out) {
  out += '"';
  if (ensure_ascii) {
    size_t i = 0;
    while (i < s.size()) {
      size_t start = i;
      int32_t cp = next_codepoint(s, i);
      if (cp >= 0x7f) {
        if (cp >= 0x10000) {
          int32_t v = cp - 0x10000;
          out += fmt::format("\\u{:04x}\\u{:04x}", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
        } else {
          out += fmt::format("\\u{:04x}", cp);
        }
        continue;
      }
      std::string one = s.substr(start, i - start);
      std::string quoted;
      json_string(one, false, quoted);
      out += quoted.substr(1, quoted.size() - 2);
    }
    out += '"';
    return;
  }
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<unsigned char>(c));
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

std::string json_float(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  return python_float_repr(d);
}

Status json_dump(const Value& v, const JsonOptions& opt, int level, std::string& out) {
  if (out.size() > opt.max_bytes) return budget_exceeded("string-bytes", static_cast<int64_t>(opt.max_bytes));
  if (level > opt.max_depth) return invalid_argument("tojson: value nests deeper than {} levels", opt.max_depth);
  const int indent = opt.indent;
  // The indentation of this value's items and closing bracket, before any of it is written.
  if (indent > 0 && static_cast<size_t>(indent) * static_cast<size_t>(level + 1) > opt.max_bytes) {
    return budget_exceeded("string-bytes", static_cast<int64_t>(opt.max_bytes));
  }
  auto newline = [&](int lvl) {
    out += '\n';
    out.append(static_cast<size_t>(indent) * static_cast<size_t>(lvl), ' ');
  };
  const std::string item_sep = !opt.item_separator.empty() ? opt.item_separator : indent >= 0 ? "," : ", ";
  switch (v.kind()) {
    case Value::Kind::kNone: out += "null"; return Status();
    case Value::Kind::kBool: out += v.as_bool() ? "true" : "false"; return Status();
    case Value::Kind::kInt: out += std::to_string(v.as_int()); return Status();
    case Value::Kind::kFloat: out += json_float(v.as_float()); return Status();
    case Value::Kind::kString: json_string(v.as_string(), opt.ensure_ascii, out); return Status();
    case Value::Kind::kList: {
      const auto& items = v.as_list().items;
      if (items.empty()) {
        out += "[]";
        return Status();
      }
      out += '[';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += item_sep;
        if (indent >= 0) newline(level + 1);
        KEEL_RETURN_IF_ERROR(json_dump(items[i], opt, level + 1, out));
      }
      if (indent >= 0) newline(level);
      out += ']';
      return Status();
    }
    case Value::Kind::kDict: {
      const Dict& d = v.as_dict();
      if (d.is_namespace) return invalid_argument("Object of type Namespace is not JSON serializable");
      std::vector<std::pair<std::string, const Value*>> entries;
      for (const auto& [k, val] : d.items) {
        std::string key;
        if (k.is_string()) {
          key = k.as_string();
        } else if (k.is_bool()) {
          key = k.as_bool() ? "true" : "false";
        } else if (k.is_none()) {
          key = "null";
        } else if (k.is_int()) {
          key = std::to_string(k.as_int());
        } else if (k.is_float()) {
          key = json_float(k.as_float());
        } else {
          return invalid_argument("keys must be str, int, float, bool or None, not {}", k.type_name());
        }
        entries.emplace_back(std::move(key), &val);
      }
      if (opt.sort_keys) {
        std::stable_sort(entries.begin(), entries.end(),
                         [](const auto& a, const auto& b) { return a.first < b.first; });
      }
      if (entries.empty()) {
        out += "{}";
        return Status();
      }
      out += '{';
      for (size_t i = 0; i < entries.size(); ++i) {
        if (i) out += item_sep;
        if (indent >= 0) newline(level + 1);
        json_string(entries[i].first, opt.ensure_ascii, out);
        out += opt.key_separator;
        KEEL_RETURN_IF_ERROR(json_dump(*entries[i].second, opt, level + 1, out));
      }
      if (indent >= 0) newline(level);
      out += '}';
      return Status();
    }
    default:
      return invalid_argument("Object of type {} is not JSON serializable", v.type_name());
  }
}

}  // namespace

Result<std::string> python_json_dumps(const Value& v, const JsonOptions& options) {
  std::string out;
  KEEL_RETURN_IF_ERROR(json_dump(v, options, 0, out));
  if (out.size() > options.max_bytes) return budget_exceeded("string-bytes", static_cast<int64_t>(options.max_bytes));
  return out;
}

std::vector<std::string> utf8_chars(const std::string& s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    size_t start = i;
    next_codepoint(s, i);
    out.push_back(s.substr(start, i - start));
  }
  return out;
}

size_t utf8_length(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

}  // namespace keel::jinja
