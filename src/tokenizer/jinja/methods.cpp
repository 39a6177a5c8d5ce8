// The Python methods of str, dict and list that chat templates call (`content.split('</think>')`,
// `message.items()`, `tool.get('name')`).
#include <fmt/format.h>
#include <utf8proc.h>

#include <algorithm>
#include <set>

#include "tokenizer/jinja/builtins.h"
#include "tokenizer/jinja/interpreter.h"
#include "tokenizer/jinja/text.h"

namespace keel::jinja {
namespace {

Result<std::string> string_arg(const CallArgs& a, size_t i, const char* name, const char* method) {
  Value v = a.get(i, name);
  if (!v.is_string()) {
    return invalid_argument("{}() argument must be str, not {}", method, v.is_undefined() ? "Undefined" : v.type_name());
  }
  return v.as_string();
}

Result<Value> split(const std::string& s, const Value& sep, int64_t maxsplit, bool from_right) {
  std::vector<std::string> parts;
  if (sep.is_none() || sep.is_undefined()) {
    std::vector<std::string> chars = utf8_chars(s);
    if (from_right) std::reverse(chars.begin(), chars.end());
    std::string word;
    bool in_word = false;
    size_t i = 0;
    for (; i < chars.size(); ++i) {
      bool space = is_python_space(chars[i]);
      if (space && in_word) {
        parts.push_back(word);
        word.clear();
        in_word = false;
      } else if (!space) {
        if (!in_word && maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) break;
        word += chars[i];
        in_word = true;
      }
    }
    if (i < chars.size()) {  // maxsplit reached: the rest, stripped on its leading side, is the last part
      std::string rest;
      for (size_t j = i; j < chars.size(); ++j) rest += chars[j];
      size_t end = chars.size();
      while (end > i && is_python_space(chars[end - 1])) --end;
      rest.clear();
      for (size_t j = i; j < end; ++j) rest += chars[j];
      parts.push_back(rest);
    } else if (in_word) {
      parts.push_back(word);
    }
    if (from_right) {
      for (auto& p : parts) {
        std::vector<std::string> c = utf8_chars(p);
        std::reverse(c.begin(), c.end());
        p.clear();
        for (auto& x : c) p += x;
      }
      std::reverse(parts.begin(), parts.end());
    }
  } else {
    if (!sep.is_string()) return invalid_argument("must be str or None, not {}", sep.type_name());
    const std::string& d = sep.as_string();
    if (d.empty()) return invalid_argument("empty separator");
    if (!from_right) {
      size_t start = 0;
      while (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit) {
        size_t p = s.find(d, start);
        if (p == std::string::npos) break;
        parts.push_back(s.substr(start, p - start));
        start = p + d.size();
      }
      parts.push_back(s.substr(start));
    } else {
      size_t end = s.size();
      std::vector<std::string> rev;
      while (maxsplit < 0 || static_cast<int64_t>(rev.size()) < maxsplit) {
        if (end < d.size()) break;
        size_t p = s.rfind(d, end - d.size());
        if (p == std::string::npos) break;
        rev.push_back(s.substr(p + d.size(), end - p - d.size()));
        end = p;
      }
      rev.push_back(s.substr(0, end));
      parts.assign(rev.rbegin(), rev.rend());
    }
  }
  std::vector<Value> out;
  for (auto& p : parts) out.emplace_back(std::move(p));
  return Value::list(std::move(out));
}

Result<Value> python_format(const std::string& fmt_str, const CallArgs& a, size_t max_bytes) {
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < fmt_str.size(); ++i) {
    char c = fmt_str[i];
    if (c == '{' && i + 1 < fmt_str.size() && fmt_str[i + 1] == '{') {
      out += '{';
      ++i;
    } else if (c == '}' && i + 1 < fmt_str.size() && fmt_str[i + 1] == '}') {
      out += '}';
      ++i;
    } else if (c == '{') {
      size_t close = fmt_str.find('}', i);
      if (close == std::string::npos) return invalid_argument("Single '{{' encountered in format string");
      std::string field = fmt_str.substr(i + 1, close - i - 1);
      std::string spec;
      if (size_t colon = field.find(':'); colon != std::string::npos) {
        spec = field.substr(colon + 1);
        field = field.substr(0, colon);
      }
      Value v;
      if (field.empty()) {
        v = a.get(auto_index++, "");
      } else if (std::all_of(field.begin(), field.end(), ::isdigit)) {
        v = a.get(static_cast<size_t>(std::stoul(field)), "");
      } else {
        v = a.get(SIZE_MAX, field.c_str());
      }
      if (v.is_undefined() && !a.has(SIZE_MAX, field.c_str())) {
        return invalid_argument("format: no argument for field '{{{}}}'", field);
      }
      KEEL_RETURN_IF_ERROR(check_format_width(spec, max_bytes));
      if (!spec.empty() && v.is_number() && spec.back() == 'f') {
        out += fmt::format(fmt::runtime("{:" + spec + "}"), v.as_float());
      } else if (!spec.empty() && (v.is_int() || v.is_bool()) && spec.back() == 'd') {
        out += fmt::format(fmt::runtime("{:" + spec + "}"), v.as_int());
      } else {
        out += v.str();
      }
      i = close;
    } else {
      out += c;
    }
  }
  return Value(out);
}

// `max_bytes` is the render's string-bytes budget: methods that build stop (or refuse) past it.
Result<Value> string_method(const std::string& s, const std::string& name, CallArgs& a, size_t max_bytes) {
  if (name == "startswith" || name == "endswith") {
    Value p = a.get(0, "prefix");
    std::vector<Value> options = p.is_list() ? p.as_list().items : std::vector<Value>{p};
    for (const auto& o : options) {
      if (!o.is_string()) return invalid_argument("{} first arg must be str or a tuple of str", name);
      const std::string& x = o.as_string();
      if (x.size() > s.size()) continue;
      if (name == "startswith" ? s.compare(0, x.size(), x) == 0 : s.compare(s.size() - x.size(), x.size(), x) == 0) {
        return Value(true);
      }
    }
    return Value(false);
  }
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    Value chars = a.get(0, "chars", Value::none());
    if (!chars.is_none() && !chars.is_string()) return invalid_argument("{} arg must be None or str", name);
    const std::string* cp = chars.is_string() ? &chars.as_string() : nullptr;
    return Value(python_strip(s, cp, name != "rstrip", name != "lstrip"));
  }
  if (name == "split" || name == "rsplit") {
    Value maxsplit = a.get(1, "maxsplit", Value(-1));
    return split(s, a.get(0, "sep", Value::none()), maxsplit.as_int(), name == "rsplit");
  }
  if (name == "replace") {
    KEEL_ASSIGN_OR_RETURN(std::string old, string_arg(a, 0, "old", "replace"));
    KEEL_ASSIGN_OR_RETURN(std::string repl, string_arg(a, 1, "new", "replace"));
    return Value(python_replace(s, old, repl, a.get(2, "count", Value(-1)).as_int(), max_bytes));
  }
  if (name == "upper") return Value(python_upper(s));
  if (name == "lower") return Value(python_lower(s));
  if (name == "title") return Value(python_title(s));
  if (name == "capitalize") return Value(python_capitalize(s));
  if (name == "format") return python_format(s, a, max_bytes);
  if (name == "join") {
    KEEL_ASSIGN_OR_RETURN(std::vector<Value> items, iterate(a.get(0, "iterable")));
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) {
      if (!items[i].is_string()) {
        return invalid_argument("sequence item {}: expected str instance, {} found", i, items[i].type_name());
      }
      if (i) out += s;
      out += items[i].as_string();
      if (out.size() > max_bytes) break;  // the caller's check fails on the size
    }
    return Value(out);
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
    KEEL_ASSIGN_OR_RETURN(std::string sub, string_arg(a, 0, "sub", name.c_str()));
    if (name == "count") {
      if (sub.empty()) return Value(static_cast<int64_t>(utf8_length(s) + 1));
      int64_t n = 0;
      for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
      return Value(n);
    }
    size_t p = name[0] == 'r' ? s.rfind(sub) : s.find(sub);
    if (p == std::string::npos) {
      if (name == "index" || name == "rindex") return invalid_argument("substring not found");
      return Value(-1);
    }
    return Value(static_cast<int64_t>(utf8_length(s.substr(0, p))));
  }
  if (name == "splitlines") {
    std::vector<Value> lines;
    std::string cur;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '\n' || s[i] == '\r') {
        lines.emplace_back(cur);
        cur.clear();
        if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
      } else {
        cur += s[i];
      }
    }
    if (!cur.empty()) lines.emplace_back(cur);
    return Value::list(std::move(lines));
  }
  if (name == "removeprefix" || name == "removesuffix") {
    KEEL_ASSIGN_OR_RETURN(std::string x, string_arg(a, 0, "prefix", name.c_str()));
    if (x.size() > s.size()) return Value(s);
    if (name == "removeprefix") return Value(s.compare(0, x.size(), x) == 0 ? s.substr(x.size()) : s);
    return Value(s.compare(s.size() - x.size(), x.size(), x) == 0 ? s.substr(0, s.size() - x.size()) : s);
  }
  if (name == "partition" || name == "rpartition") {
    KEEL_ASSIGN_OR_RETURN(std::string sep, string_arg(a, 0, "sep", name.c_str()));
    if (sep.empty()) return invalid_argument("empty separator");
    size_t p = name == "partition" ? s.find(sep) : s.rfind(sep);
    if (p == std::string::npos) {
      return name == "partition" ? Value::list({Value(s), Value(""), Value("")}, true)
                                 : Value::list({Value(""), Value(""), Value(s)}, true);
    }
    return Value::list({Value(s.substr(0, p)), Value(sep), Value(s.substr(p + sep.size()))}, true);
  }
  if (name == "ljust" || name == "rjust" || name == "center" || name == "zfill") {
    int64_t width = a.get(0, "width", Value(0)).as_int();
    std::string fill = name == "zfill" ? "0" : a.get(1, "fillchar", Value(" ")).str();
    int64_t len = static_cast<int64_t>(utf8_length(s));
    if (width <= len) return Value(s);
    int64_t pad = width - len;
    if (static_cast<uint64_t>(pad) > max_bytes / std::max<size_t>(fill.size(), 1)) {
      return budget_exceeded("string-bytes", static_cast<int64_t>(max_bytes));
    }
    auto rep = [&](int64_t n) {
      std::string r;
      for (int64_t i = 0; i < n; ++i) r += fill;
      return r;
    };
    if (name == "ljust") return Value(s + rep(pad));
    if (name == "rjust") return Value(rep(pad) + s);
    if (name == "zfill") {
      if (!s.empty() && (s[0] == '-' || s[0] == '+')) return Value(s.substr(0, 1) + rep(pad) + s.substr(1));
      return Value(rep(pad) + s);
    }
    int64_t left = pad / 2 + (pad & width & 1);
    return Value(rep(left) + s + rep(pad - left));
  }
  if (name == "casefold") return Value(python_lower(s));
  if (name == "isascii") {
    return Value(std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; }));
  }
  if (name == "isnumeric" || name == "isdecimal") return Value(python_is(s, "isdigit"));
  if (name == "isdigit" || name == "isalpha" || name == "isalnum" || name == "isspace" || name == "isupper" ||
      name == "islower") {
    return Value(python_is(s, name));
  }
  return unsupported("str.{}() is not supported in chat templates", name);
}

Result<Value> dict_method(const Value& d, const std::string& name, CallArgs& a) {
  Dict& dict = d.as_dict();
  if (name == "items") {
    std::vector<Value> out;
    for (const auto& [k, v] : dict.items) out.push_back(Value::list({k, v}, true));
    return Value::list(std::move(out));
  }
  if (name == "keys" || name == "values") {
    std::vector<Value> out;
    for (const auto& [k, v] : dict.items) out.push_back(name == "keys" ? k : v);
    return Value::list(std::move(out));
  }
  if (name == "get") {
    if (const Value* v = dict.find(a.get(0, "key"))) return *v;
    return a.get(1, "default", Value::none());
  }
  if (name == "pop") {
    Value key = a.get(0, "key");
    for (auto it = dict.items.begin(); it != dict.items.end(); ++it) {
      if (equals(it->first, key)) {
        Value v = it->second;
        dict.items.erase(it);
        return v;
      }
    }
    if (a.has(1, "default")) return a.get(1, "default");
    return invalid_argument("KeyError: {}", key.repr());
  }
  if (name == "setdefault") {
    Value key = a.get(0, "key");
    if (const Value* v = dict.find(key)) return *v;
    Value dflt = a.get(1, "default", Value::none());
    dict.set(key, dflt);
    return dflt;
  }
  if (name == "update") {
    Value other = a.get(0, "other", Value::none());
    if (other.is_dict()) {
      for (const auto& [k, v] : other.as_dict().items) dict.set(k, v);
    }
    for (const auto& [k, v] : a.keyword) dict.set(Value(k), v);
    return Value::none();
  }
  if (name == "copy") {
    Value c = Value::dict();
    c.as_dict().items = dict.items;
    return c;
  }
  return invalid_argument("'dict' object has no attribute '{}'", name);
}

// `max_items` is the render's list-items budget.
Result<Value> list_method(const Value& l, const std::string& name, CallArgs& a, int64_t max_items) {
  auto& items = l.as_list().items;
  if ((name == "append" || name == "insert") && static_cast<int64_t>(items.size()) >= max_items) {
    return budget_exceeded("list-items", max_items);
  }
  if (name == "append") {
    items.push_back(a.get(0, "object"));
    return Value::none();
  }
  if (name == "extend") {
    KEEL_ASSIGN_OR_RETURN(std::vector<Value> more, iterate(a.get(0, "iterable")));
    if (static_cast<int64_t>(items.size() + more.size()) > max_items) return budget_exceeded("list-items", max_items);
    for (auto& v : more) items.push_back(std::move(v));
    return Value::none();
  }
  if (name == "insert") {
    int64_t i = a.get(0, "index").as_int();
    int64_t n = static_cast<int64_t>(items.size());
    if (i < 0) i = std::max<int64_t>(0, i + n);
    items.insert(items.begin() + std::min(i, n), a.get(1, "object"));
    return Value::none();
  }
  if (name == "pop") {
    if (items.empty()) return invalid_argument("pop from empty list");
    int64_t n = static_cast<int64_t>(items.size());
    int64_t i = a.get(0, "index", Value(-1)).as_int();
    if (i < 0) i += n;
    if (i < 0 || i >= n) return invalid_argument("pop index out of range");
    Value v = items[static_cast<size_t>(i)];
    items.erase(items.begin() + i);
    return v;
  }
  if (name == "index" || name == "count") {
    Value x = a.get(0, "value");
    int64_t count = 0;
    for (size_t i = 0; i < items.size(); ++i) {
      if (!equals(items[i], x)) continue;
      if (name == "index") return Value(static_cast<int64_t>(i));
      ++count;
    }
    if (name == "index") return invalid_argument("{} is not in list", x.repr());
    return Value(count);
  }
  return invalid_argument("'list' object has no attribute '{}'", name);
}

const std::set<std::string>& string_methods() {
  static const std::set<std::string> names = {
      "startswith", "endswith", "strip",  "lstrip", "rstrip",     "split",   "rsplit",  "replace",
      "upper",      "lower",    "title",  "capitalize", "format", "join",    "find",    "rfind",
      "index",      "rindex",   "count",  "splitlines", "isdigit", "isalpha", "isalnum", "isspace",
      "isupper",    "islower",  "removeprefix", "removesuffix", "partition", "rpartition", "ljust", "rjust",
      "center",     "zfill",    "casefold", "isascii", "isnumeric", "isdecimal",
      // Python has these too; `is defined` must see them even though calling them is unsupported
      "encode", "expandtabs", "format_map", "maketrans", "translate", "isidentifier", "isprintable", "istitle",
      "swapcase"};
  return names;
}

}  // namespace

Value bound_method(const Value& obj, const std::string& name) {
  if (obj.is_string() && string_methods().count(name)) {
    std::string s = obj.as_string();
    return Value::callable(name, [s, name](Interpreter& in, CallArgs& a) {
      return string_method(s, name, a, in.budget().max_string_bytes);
    });
  }
  static const std::set<std::string> dict_names = {"items", "keys", "values", "get", "pop", "setdefault",
                                                   "update", "copy"};
  if (obj.is_dict() && !obj.as_dict().is_namespace && dict_names.count(name)) {
    return Value::callable(name, [obj, name](Interpreter&, CallArgs& a) { return dict_method(obj, name, a); });
  }
  static const std::set<std::string> list_names = {"append", "extend", "insert", "pop", "index", "count"};
  if (obj.is_list() && !obj.as_list().is_tuple && list_names.count(name)) {
    return Value::callable(name, [obj, name](Interpreter& in, CallArgs& a) {
      return list_method(obj, name, a, in.budget().max_list_items);
    });
  }
  if (obj.is_list() && obj.as_list().is_tuple && (name == "index" || name == "count")) {
    return Value::callable(name, [obj, name](Interpreter& in, CallArgs& a) {
      return list_method(obj, name, a, in.budget().max_list_items);
    });
  }
  return Value::undefined("");
}

}  // namespace keel::jinja
