// Jinja's builtin filters and tests, with transformers' tojson (ensure_ascii=False, Python separators).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "tokenizer/jinja/builtins.h"
#include "tokenizer/jinja/interpreter.h"
#include "tokenizer/jinja/text.h"

namespace keel::jinja {
namespace {

const std::set<std::string> kFilters = {
    "abs",    "attr",   "capitalize", "center", "count",   "d",         "default", "dictsort", "e",
    "escape", "first",  "float",      "format", "indent",  "int",       "items",   "join",     "last",
    "length", "list",   "lower",      "map",    "max",     "min",       "reject",  "rejectattr", "replace",
    "reverse", "round", "safe",       "select", "selectattr", "sort",   "string",  "sum",      "title",
    "tojson", "trim",   "unique",     "upper",  "wordcount"};

const std::set<std::string> kTests = {
    "defined", "undefined", "none",   "string", "number",  "integer", "float", "mapping", "iterable",
    "sequence", "boolean",  "true",   "false",  "callable", "equalto", "eq",   "==",      "ne",
    "!=",      "lt",        "<",      "le",     "<=",      "gt",      ">",     "ge",      ">=",
    "greaterthan", "lessthan", "in",  "odd",    "even",    "divisibleby", "sameas", "lower", "upper",
    "escaped", "filter",    "test"};

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

// jinja2's make_attrgetter: "a.b.0" looks up a, then b, then item 0.
Result<Value> attr_path(const Value& item, const Value& attribute) {
  if (!attribute.is_string()) return get_item(item, attribute);
  Value cur = item;
  const std::string& path = attribute.as_string();
  size_t start = 0;
  while (start <= path.size()) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    Value key = (!part.empty() && std::all_of(part.begin(), part.end(), ::isdigit))
                    ? Value(static_cast<int64_t>(std::stoll(part)))
                    : Value(part);
    KEEL_ASSIGN_OR_RETURN(cur, get_item(cur, key));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return cur;
}

Result<std::vector<Value>> seq(const Value& v) { return iterate(v); }

// Sort key for sort/unique/dictsort/min/max: strings compare case-insensitively unless case_sensitive.
Value fold(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return Value(python_lower(v.as_string()));
  return v;
}

Result<std::vector<Value>> sorted(std::vector<Value> items, bool reverse, bool case_sensitive,
                                  const Value& attribute) {
  std::vector<std::pair<Value, Value>> keyed;
  for (auto& v : items) {
    Value key = v;
    if (!attribute.is_none() && !attribute.is_undefined()) {
      KEEL_ASSIGN_OR_RETURN(key, attr_path(v, attribute));
    }
    keyed.emplace_back(fold(key, case_sensitive), std::move(v));
  }
  Status error;
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& a, const auto& b) {
    auto r = reverse ? less_than(b.first, a.first) : less_than(a.first, b.first);
    if (!r.ok()) {
      error = r.status();
      return false;
    }
    return *r;
  });
  KEEL_RETURN_IF_ERROR(error);
  std::vector<Value> out;
  for (auto& [k, v] : keyed) out.push_back(std::move(v));
  return out;
}

Result<Value> printf_format(const std::string& f, const std::vector<Value>& args, size_t max_bytes) {
  std::string out;
  size_t next = 0;
  for (size_t i = 0; i < f.size(); ++i) {
    if (f[i] != '%') {
      out += f[i];
      continue;
    }
    size_t j = i + 1;
    std::string spec;
    while (j < f.size() && std::string("-+ #0123456789.").find(f[j]) != std::string::npos) spec += f[j++];
    if (j >= f.size()) return invalid_argument("incomplete format");
    char conv = f[j];
    i = j;
    if (conv == '%') {
      out += '%';
      continue;
    }
    if (next >= args.size()) return invalid_argument("not enough arguments for format string");
    KEEL_RETURN_IF_ERROR(check_format_width(spec, max_bytes));
    const Value& v = args[next++];
    switch (conv) {
      case 's': out += v.str(); break;
      case 'r': out += v.repr(); break;
      case 'd':
      case 'i':
        if (!v.is_number()) return invalid_argument("%d format: a real number is required, not {}", v.type_name());
        out += fmt::format(fmt::runtime("{:" + spec + "d}"), v.as_int());
        break;
      case 'f':
        if (!v.is_number()) return invalid_argument("must be real number, not {}", v.type_name());
        out += fmt::format(fmt::runtime("{:" + (spec.find('.') == std::string::npos ? spec + ".6" : spec) + "f}"),
                           v.as_float());
        break;
      case 'x': out += fmt::format("{:x}", v.as_int()); break;
      default: return invalid_argument("unsupported format character '{}'", conv);
    }
  }
  return Value(out);
}

// Stops adding lines once past `max_bytes` (the caller's string-bytes check then fails on the size).
std::string do_indent(const std::string& text, const Value& width, bool first, bool blank, size_t max_bytes) {
  std::string indention = width.is_string() ? width.as_string() : std::string(static_cast<size_t>(width.as_int()), ' ');
  std::string s = text + "\n";
  std::vector<std::string> lines;
  std::string cur;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\n' || s[i] == '\r') {
      lines.push_back(cur);
      cur.clear();
      if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
    } else {
      cur += s[i];
    }
  }
  if (!cur.empty()) lines.push_back(cur);
  std::string rv;
  if (blank) {
    for (size_t i = 0; i < lines.size() && rv.size() <= max_bytes; ++i) rv += (i ? "\n" + indention : "") + lines[i];
  } else {
    rv = lines.empty() ? "" : lines[0];
    for (size_t i = 1; i < lines.size() && rv.size() <= max_bytes; ++i) {
      rv += "\n" + (lines[i].empty() ? "" : indention + lines[i]);
    }
  }
  return first ? indention + rv : rv;
}

Result<Value> select_like(Interpreter& in, const Value& input, CallArgs& args, bool by_attr, bool keep) {
  KEEL_ASSIGN_OR_RETURN(std::vector<Value> items, seq(input));
  size_t first_test_arg = by_attr ? 1 : 0;
  std::string test;
  if (args.positional.size() > first_test_arg) {
    if (!args.positional[first_test_arg].is_string()) return invalid_argument("test name must be a string");
    test = args.positional[first_test_arg].as_string();
    if (!is_known_test(test)) return invalid_argument("no test named '{}'", test);
  }
  CallArgs test_args;
  for (size_t i = first_test_arg + 1; i < args.positional.size(); ++i) test_args.positional.push_back(args.positional[i]);
  std::vector<Value> out;
  for (const auto& item : items) {
    Value subject = item;
    if (by_attr) {
      if (args.positional.empty()) return invalid_argument("missing attribute name");
      KEEL_ASSIGN_OR_RETURN(subject, attr_path(item, args.positional[0]));
    }
    bool r = subject.truthy();
    if (!test.empty()) {
      CallArgs copy = test_args;
      KEEL_ASSIGN_OR_RETURN(r, apply_test(in, test, subject, copy));
    }
    if (r == keep) out.push_back(item);
  }
  return Value::list(std::move(out));
}

}  // namespace

bool is_known_filter(const std::string& name) { return kFilters.count(name) > 0; }
bool is_known_test(const std::string& name) { return kTests.count(name) > 0; }

Result<Value> apply_filter(Interpreter& in, const std::string& name, const Value& v, CallArgs& a) {
  if (name == "default" || name == "d") {
    bool boolean = a.get(1, "boolean", Value(false)).truthy();
    if (v.is_undefined() || (boolean && !v.truthy())) return a.get(0, "default_value", Value(""));
    return v;
  }
  if (name == "length" || name == "count") {
    if (v.is_undefined()) return Value(0);
    if (v.is_string()) return Value(static_cast<int64_t>(utf8_length(v.as_string())));
    if (v.is_list()) return Value(static_cast<int64_t>(v.as_list().items.size()));
    if (v.is_dict()) return Value(static_cast<int64_t>(v.as_dict().items.size()));
    return invalid_argument("object of type '{}' has no len()", v.type_name());
  }
  if (name == "tojson") {
    JsonOptions opt;
    opt.ensure_ascii = a.get(0, "ensure_ascii", Value(false)).truthy();
    Value indent = a.get(1, "indent", Value::none());
    if (!indent.is_none()) opt.indent = static_cast<int>(indent.as_int());
    Value seps = a.get(2, "separators", Value::none());
    if (seps.is_list() && seps.as_list().items.size() == 2) {
      opt.item_separator = seps.as_list().items[0].str();
      opt.key_separator = seps.as_list().items[1].str();
    }
    opt.sort_keys = a.get(3, "sort_keys", Value(false)).truthy();
    opt.max_bytes = in.budget().max_string_bytes;
    opt.max_depth = in.budget().max_value_depth;
    KEEL_ASSIGN_OR_RETURN(std::string s, python_json_dumps(v, opt));
    return Value(s);
  }
  if (name == "trim") {
    Value chars = a.get(0, "chars", Value::none());
    return Value(python_strip(v.str(), chars.is_string() ? &chars.as_string() : nullptr, true, true));
  }
  if (name == "upper") return Value(python_upper(v.str()));
  if (name == "lower") return Value(python_lower(v.str()));
  if (name == "capitalize") return Value(python_capitalize(v.str()));
  if (name == "title") {
    // jinja2 capitalises each word after a run of [-\s({\[<], unlike str.title()
    std::string out;
    bool start = true;
    for (auto& c : utf8_chars(v.str())) {
      bool sep = is_python_space(c) || c == "-" || c == "(" || c == "{" || c == "[" || c == "<";
      if (sep) {
        out += c;
        start = true;
      } else {
        out += start ? python_upper(c) : python_lower(c);
        start = false;
      }
    }
    return Value(out);
  }
  if (name == "first" || name == "last") {
    KEEL_ASSIGN_OR_RETURN(std::vector<Value> items, seq(v));
    if (items.empty()) return Value::undefined(fmt::format("No {} item, sequence was empty.", name));
    return name == "first" ? items.front() : items.back();
  }
  if (name == "join") {
    KEEL_ASSIGN_OR_RETURN(std::vector<Value> items, seq(v));
    std::string sep = a.get(0, "d", Value("")).str();
    Value attribute = a.get(1, "attribute", Value::none());
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) {
      Value item = items[i];
      if (!attribute.is_none()) {
        KEEL_ASSIGN_OR_RETURN(item, attr_path(item, attribute));
      }
      if (i) out += sep;
      out += item.str(in.budget().max_string_bytes);
      if (out.size() > in.budget().max_string_bytes) break;  // the caller's check fails on the size
    }
    return Value(out);
  }
  if (name == "items") {
    if (v.is_undefined()) return Value::list();
    if (!v.is_dict()) return invalid_argument("Can only get item pairs from a mapping.");
    std::vector<Value> out;
    for (const auto& [k, val] : v.as_dict().items) out.push_back(Value::list({k, val}, true));
    return Value::list(std::move(out));
  }
  if (name == "selectattr" || name == "rejectattr") return select_like(in, v, a, true, name == "selectattr");
  if (name == "select" || name == "reject") return select_like(in, v, a, false, name == "select");
  if (name == "map") {
    KEEL_ASSIGN_OR_RETURN(std::vector<Value> items, seq(v));
    std::vector<Value> out;
    if (a.has(SIZE_MAX, "attribute")) {
      Value attribute = a.get(SIZE_MAX, "attribute");
      bool has_default = a.has(SIZE_MAX, "default");
      for (const auto& item : items) {
        KEEL_ASSIGN_OR_RETURN(Value x, attr_path(item, attribute));
        if (x.is_undefined() && has_default) x = a.get(SIZE_MAX, "default");
        out.push_back(x);
      }
      return Value::list(std::move(out));
    }
    if (a.positional.empty() || !a.positional[0].is_string()) return invalid_argument("map: no filter name given");
    std::string filter = a.positional[0].as_string();
    if (!is_known_filter(filter)) return invalid_argument("unknown filter '{}'", filter);
    for (const auto& item : items) {
      CallArgs rest;
      rest.positional.assign(a.positional.begin() + 1, a.positional.end());
      rest.keyword = a.keyword;
      KEEL_ASSIGN_OR_RETURN(Value x, apply_filter(in, filter, item, rest));
      out.push_back(x);
    }
    return Value::list(std::move(out));
  }
  if (name == "list") {
    KEEL_ASSIGN_OR_RETURN(std::vector<Value> items, seq(v));
    return Value::list(std::move(items));
  }
  if (name == "string") return Value(v.str());
  if (name == "safe") return v;
  if (name == "e" || name == "escape") return Value(html_escape(v.str()));
  if (name == "int") {
    Value dflt = a.get(0, "default", Value(0));
    if (v.is_int() || v.is_bool() || v.is_float()) return Value(v.as_int());
    if (v.is_string()) {
      std::string s = python_strip(v.as_string(), nullptr, true, true);
      int base = static_cast<int>(a.get(1, "base", Value(10)).as_int());
      char* end = nullptr;
      long long i = std::strtoll(s.c_str(), &end, base);
      if (!s.empty() && end && *end == '\0') return Value(static_cast<int64_t>(i));
      double d = std::strtod(s.c_str(), &end);
      if (!s.empty() && end && *end == '\0' && std::isfinite(d)) return Value(static_cast<int64_t>(d));
    }
    return dflt;
  }
  if (name == "float") {
    Value dflt = a.get(0, "default", Value(0.0));
    if (v.is_number()) return Value(v.as_float());
    if (v.is_string()) {
      std::string s = python_strip(v.as_string(), nullptr, true, true);
      char* end = nullptr;
      double d = std::strtod(s.c_str(), &end);
      if (!s.empty() && end && *end == '\0') return Value(d);
    }
    return dflt;
  }
  if (name == "abs") {
    if (v.is_float()) return Value(std::fabs(v.as_float()));
    if (v.is_number()) return Value(static_cast<int64_t>(std::llabs(v.as_int())));
    return invalid_argument("bad operand type for abs(): '{}'", v.type_name());
  }
  if (name == "round") {
    if (!v.is_number()) return invalid_argument("type {} doesn't define __round__ method", v.type_name());
    int64_t precision = a.get(0, "precision", Value(0)).as_int();
    std::string method = a.get(1, "method", Value("common")).str();
    double scale = std::pow(10.0, static_cast<double>(precision));
    double x = v.as_float() * scale;
    if (method == "common") {
      if (v.is_int() || v.is_bool()) return Value(v.as_int());
      // Python's round() rounds the exact binary value half-to-even, which is what printf's %.Nf does
      if (precision >= 0 && std::isfinite(v.as_float())) {
        return Value(std::strtod(fmt::format("{:.{}f}", v.as_float(), precision).c_str(), nullptr));
      }
      x = std::nearbyint(x);
    } else if (method == "ceil") {
      x = std::ceil(x);
    } else if (method == "floor") {
      x = std::floor(x);
    } else {
      return invalid_argument("method must be 'common', 'ceil' or 'floor'");
    }
    return Value(x / scale);
  }
  if (name == "replace") {
    Value count = a.get(2, "count", Value::none());
    return Value(python_replace(v.str(), a.get(0, "old").str(), a.get(1, "new").str(),
                                count.is_none() ? -1 : count.as_int(), in.budget().max_string_bytes));
  }
  if (name == "reverse") {
    if (v.is_string()) {
      std::vector<std::string> cs = utf8_chars(v.as_string());
      std::string out;
      for (auto it = cs.rbegin(); it != cs.rend(); ++it) out += *it;
      return Value(out);
    }
    KEEL_ASSIGN_OR_RETURN(std::vector<Value> items, seq(v));
    std::reverse(items.begin(), items.end());
    return Value::list(std::move(items));
  }
  if (name == "sort") {
    KEEL_ASSIGN_OR_RETURN(std::vector<Value> items, seq(v));
    KEEL_ASSIGN_OR_RETURN(items, sorted(std::move(items), a.get(0, "reverse", Value(false)).truthy(),
                                        a.get(1, "case_sensitive", Value(false)).truthy(),
                                        a.get(2, "attribute", Value::none())));
    return Value::list(std::move(items));
  }
  if (name == "dictsort") {
    if (!v.is_dict()) return invalid_argument("dictsort: expected a mapping, got {}", v.type_name());
    bool case_sensitive = a.get(0, "case_sensitive", Value(false)).truthy();
    std::string by = a.get(1, "by", Value("key")).str();
    bool reverse = a.get(2, "reverse", Value(false)).truthy();
    std::vector<Value> pairs;
    for (const auto& [k, val] : v.as_dict().items) pairs.push_back(Value::list({k, val}, true));
    KEEL_ASSIGN_OR_RETURN(pairs, sorted(std::move(pairs), reverse, case_sensitive, Value(by == "value" ? 1 : 0)));
    return Value::list(std::move(pairs));
  }
  if (name == "unique") {
    KEEL_ASSIGN_OR_RETURN(std::vector<Value> items, seq(v));
    bool case_sensitive = a.get(0, "case_sensitive", Value(false)).truthy();
    Value attribute = a.get(1, "attribute", Value::none());
    std::vector<Value> seen, out;
    for (const auto& item : items) {
      Value key = item;
      if (!attribute.is_none()) {
        KEEL_ASSIGN_OR_RETURN(key, attr_path(item, attribute));
      }
      key = fold(key, case_sensitive);
      if (std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, key); })) continue;
      seen.push_back(key);
      out.push_back(item);
    }
    return Value::list(std::move(out));
  }
  if (name == "min" || name == "max") {
    KEEL_ASSIGN_OR_RETURN(std::vector<Value> items, seq(v));
    if (items.empty()) return Value::undefined(fmt::format("No aggregated item, sequence was empty."));
    KEEL_ASSIGN_OR_RETURN(items, sorted(std::move(items), false, a.get(0, "case_sensitive", Value(false)).truthy(),
                                        a.get(1, "attribute", Value::none())));
    return name == "min" ? items.front() : items.back();
  }
  if (name == "sum") {
    KEEL_ASSIGN_OR_RETURN(std::vector<Value> items, seq(v));
    Value attribute = a.get(0, "attribute", Value::none());
    Value total = a.get(1, "start", Value(0));
    for (const auto& item : items) {
      Value x = item;
      if (!attribute.is_none()) {
        KEEL_ASSIGN_OR_RETURN(x, attr_path(item, attribute));
      }
      if (!x.is_number() || !total.is_number()) return invalid_argument("sum: unsupported operand '{}'", x.type_name());
      total = (x.is_float() || total.is_float()) ? Value(total.as_float() + x.as_float())
                                                 : Value(total.as_int() + x.as_int());
    }
    return total;
  }
  if (name == "attr") return get_attr(v, a.get(0, "name").str());
  if (name == "format") return printf_format(v.str(), a.positional, in.budget().max_string_bytes);
  if (name == "indent") {
    Value width = a.get(0, "width", Value(4));
    if (!width.is_string()) KEEL_RETURN_IF_ERROR(in.check_string(static_cast<size_t>(std::max<int64_t>(0, width.as_int()))));
    return Value(do_indent(v.str(), width, a.get(1, "first", Value(false)).truthy(),
                           a.get(2, "blank", Value(false)).truthy(), in.budget().max_string_bytes));
  }
  if (name == "center") {
    std::string s = v.str();
    int64_t width = a.get(0, "width", Value(80)).as_int();
    int64_t len = static_cast<int64_t>(utf8_length(s));
    if (width <= len) return Value(s);
    int64_t pad = width - len;
    KEEL_RETURN_IF_ERROR(in.check_string(static_cast<size_t>(pad)));
    int64_t left = pad / 2 + (pad & width & 1);  // Python's str.center puts the odd space on the left
    return Value(std::string(static_cast<size_t>(left), ' ') + s + std::string(static_cast<size_t>(pad - left), ' '));
  }
  if (name == "wordcount") {
    int64_t n = 0;
    bool in_word = false;
    for (auto& c : utf8_chars(v.str())) {
      bool word = python_is(c, "isalnum") || c == "_";
      if (word && !in_word) ++n;
      in_word = word;
    }
    return Value(n);
  }
  return invalid_argument("unknown filter '{}'", name);
}

Result<bool> apply_test(Interpreter& in, const std::string& name, const Value& v, CallArgs& a) {
  Value arg = a.get(0, "other");
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "string") return v.is_string();
  if (name == "number") return v.is_number();
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_float();
  if (name == "boolean") return v.is_bool();
  if (name == "true") return v.is_bool() && v.as_bool();
  if (name == "false") return v.is_bool() && !v.as_bool();
  if (name == "mapping") return v.is_dict() && !v.as_dict().is_namespace;
  if (name == "iterable" || name == "sequence") {
    return v.is_string() || v.is_list() || (v.is_dict() && !v.as_dict().is_namespace) || v.is_undefined();
  }
  if (name == "callable") return v.is_callable();
  if (name == "equalto" || name == "eq" || name == "==" || name == "sameas") return equals(v, arg);
  if (name == "ne" || name == "!=") return !equals(v, arg);
  if (name == "lt" || name == "<" || name == "lessthan") return less_than(v, arg);
  if (name == "gt" || name == ">" || name == "greaterthan") return less_than(arg, v);
  if (name == "le" || name == "<=") {
    KEEL_ASSIGN_OR_RETURN(bool r, less_than(arg, v));
    return !r;
  }
  if (name == "ge" || name == ">=") {
    KEEL_ASSIGN_OR_RETURN(bool r, less_than(v, arg));
    return !r;
  }
  if (name == "in") return contains(arg, v);
  if (name == "odd" || name == "even" || name == "divisibleby") {
    if (!v.is_int() && !v.is_bool()) return invalid_argument("test '{}' needs an integer, got {}", name, v.type_name());
    if (name == "odd") return v.as_int() % 2 != 0;
    if (name == "even") return v.as_int() % 2 == 0;
    if (arg.as_int() == 0) return invalid_argument("integer division or modulo by zero");
    return v.as_int() % arg.as_int() == 0;
  }
  if (name == "lower") return v.is_string() && python_lower(v.as_string()) == v.as_string();
  if (name == "upper") return v.is_string() && python_upper(v.as_string()) == v.as_string();
  if (name == "escaped") return false;
  if (name == "filter") return v.is_string() && is_known_filter(v.as_string());
  if (name == "test") return v.is_string() && is_known_test(v.as_string());
  return invalid_argument("unknown test '{}'", name);
}

}  // namespace keel::jinja
