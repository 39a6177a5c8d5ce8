#include "tokenizer/jinja/text.h"

#include <utf8proc.h>

#include <set>
#include <vector>

#include "tokenizer/jinja/value.h"

namespace keel::jinja {
namespace {

int32_t decode(const std::string& ch) {
  utf8proc_int32_t cp = 0;
  if (utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(ch.data()), static_cast<utf8proc_ssize_t>(ch.size()),
                       &cp) <= 0) {
    return static_cast<unsigned char>(ch[0]);
  }
  return cp;
}

std::string encode(int32_t cp) {
  utf8proc_uint8_t buf[4];
  auto n = utf8proc_encode_char(cp, buf);
  return std::string(reinterpret_cast<char*>(buf), static_cast<size_t>(n));
}

bool is_space_cp(int32_t cp) {
  if ((cp >= 9 && cp <= 13) || (cp >= 28 && cp <= 32)) return true;
  if (cp < 0x80) return false;
  if (cp == 0x85 || cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 ||
      cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000) {
    return true;
  }
  return false;
}

bool is_cased_letter(int32_t cp) {
  auto c = utf8proc_category(cp);
  return c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LL || c == UTF8PROC_CATEGORY_LT;
}

}  // namespace

bool is_python_space(const std::string& ch) { return !ch.empty() && is_space_cp(decode(ch)); }

std::string python_strip(const std::string& s, const std::string* chars, bool left, bool right) {
  std::vector<std::string> cs = utf8_chars(s);
  std::set<std::string> strip_set;
  if (chars) {
    for (auto& c : utf8_chars(*chars)) strip_set.insert(c);
  }
  auto strip_me = [&](const std::string& c) { return chars ? strip_set.count(c) > 0 : is_python_space(c); };
  size_t b = 0, e = cs.size();
  if (left) {
    while (b < e && strip_me(cs[b])) ++b;
  }
  if (right) {
    while (e > b && strip_me(cs[e - 1])) --e;
  }
  std::string out;
  for (size_t i = b; i < e; ++i) out += cs[i];
  return out;
}

std::string python_upper(const std::string& s) {
  std::string out;
  for (auto& c : utf8_chars(s)) out += encode(utf8proc_toupper(decode(c)));
  return out;
}

std::string python_lower(const std::string& s) {
  std::string out;
  for (auto& c : utf8_chars(s)) out += encode(utf8proc_tolower(decode(c)));
  return out;
}

std::string python_title(const std::string& s) {
  std::string out;
  bool prev_cased = false;
  for (auto& c : utf8_chars(s)) {
    int32_t cp = decode(c);
    out += encode(prev_cased ? utf8proc_tolower(cp) : utf8proc_totitle(cp));
    prev_cased = is_cased_letter(cp);
  }
  return out;
}

std::string python_capitalize(const std::string& s) {
  std::string out;
  bool first = true;
  for (auto& c : utf8_chars(s)) {
    int32_t cp = decode(c);
    out += encode(first ? utf8proc_totitle(cp) : utf8proc_tolower(cp));
    first = false;
  }
  return out;
}

Status check_format_width(const std::string& spec, size_t max_bytes) {
  uint64_t number = 0;
  for (char c : spec) {
    if (c < '0' || c > '9') {
      number = 0;
      continue;
    }
    number = number * 10 + static_cast<uint64_t>(c - '0');
    if (number > max_bytes) return budget_exceeded("string-bytes", static_cast<int64_t>(max_bytes));
  }
  return Status();
}

std::string python_replace(const std::string& s, const std::string& old, const std::string& repl, int64_t count,
                           size_t max_bytes) {
  std::string out;
  int64_t done = 0;
  if (old.empty()) {
    std::vector<std::string> cs = utf8_chars(s);
    for (size_t i = 0; i <= cs.size() && out.size() <= max_bytes; ++i) {
      if (count < 0 || done < count) {
        out += repl;
        ++done;
      }
      if (i < cs.size()) out += cs[i];
    }
    return out;
  }
  size_t start = 0;
  while ((count < 0 || done < count) && out.size() <= max_bytes) {
    size_t p = s.find(old, start);
    if (p == std::string::npos) break;
    out.append(s, start, p - start);
    out += repl;
    start = p + old.size();
    ++done;
  }
  out.append(s, start, std::string::npos);
  return out;
}

bool python_is(const std::string& s, const std::string& which) {
  std::vector<std::string> cs = utf8_chars(s);
  if (cs.empty()) return false;
  bool any_cased = false;
  for (auto& c : cs) {
    int32_t cp = decode(c);
    auto cat = utf8proc_category(cp);
    bool alpha = cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO;
    bool digit = cat == UTF8PROC_CATEGORY_ND;
    if (which == "isdigit" && !digit) return false;
    if (which == "isalpha" && !alpha) return false;
    if (which == "isalnum" && !alpha && !digit) return false;
    if (which == "isspace" && !is_space_cp(cp)) return false;
    if (which == "isupper" || which == "islower") {
      if (cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LT) {
        if (which == "islower") return false;
        any_cased = true;
      } else if (cat == UTF8PROC_CATEGORY_LL) {
        if (which == "isupper") return false;
        any_cased = true;
      }
    }
  }
  if (which == "isupper" || which == "islower") return any_cased;
  return true;
}

}  // namespace keel::jinja
