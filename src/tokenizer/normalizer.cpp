#include "tokenizer/normalizer.h"

#include <utf8proc.h>

#include <cstdlib>
#include <vector>

#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace keel::tokenizer {

namespace {

bool is_ascii(const std::string& s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

class UnicodeForm : public Normalizer {
 public:
  explicit UnicodeForm(int options) : options_(options) {}
  void normalize(std::string& text) const override {
    if (is_ascii(text)) return;  // every normal form leaves ASCII as it is
    utf8proc_uint8_t* out = nullptr;
    utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                      static_cast<utf8proc_ssize_t>(text.size()), &out,
                                      static_cast<utf8proc_option_t>(options_));
    if (n >= 0) text.assign(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
    std::free(out);
  }

 private:
  int options_;
};

class Lowercase : public Normalizer {
 public:
  void normalize(std::string& text) const override {
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
      char32_t c = next_char(text, i);
      append_utf8(out, static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
    }
    text = std::move(out);
  }
};

class Replace : public Normalizer {
 public:
  Replace(Regex pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void normalize(std::string& text) const override {
    std::string out;
    size_t last = 0;
    pattern_.for_each_match(text, [&](size_t start, size_t end) {
      out.append(text, last, start - last);
      out += content_;
      last = end;
    });
    if (last == 0 && out.empty()) return;
    out.append(text, last, std::string::npos);
    text = std::move(out);
  }

 private:
  Regex pattern_;
  std::string content_;
};

class Prepend : public Normalizer {
 public:
  explicit Prepend(std::string prefix) : prefix_(std::move(prefix)) {}
  void normalize(std::string& text) const override {
    if (!text.empty()) text.insert(0, prefix_);
  }

 private:
  std::string prefix_;
};

class Strip : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& text) const override {
    size_t begin = 0, end = text.size();
    if (left_) {
      for (size_t i = 0; i < text.size();) {
        if (!is_whitespace(next_char(text, i))) break;
        begin = i;
      }
    }
    if (right_) {
      size_t i = begin;
      size_t keep = begin;
      while (i < end) {
        char32_t c = next_char(text, i);
        if (!is_whitespace(c)) keep = i;
      }
      end = keep;
    }
    text = text.substr(begin, end - begin);
  }

 private:
  bool left_, right_;
};

class Sequence : public Normalizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Normalizer>> items) : items_(std::move(items)) {}
  void normalize(std::string& text) const override {
    for (const auto& n : items_) n->normalize(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> items_;
};

}  // namespace

Result<std::unique_ptr<Normalizer>> parse_normalizer(const Json& j, const std::string& where) {
  if (j.is_null()) return std::unique_ptr<Normalizer>();
  KEEL_ASSIGN_OR_RETURN(std::string type, get_string(j, "type", where));
  if (type == "NFC") return std::unique_ptr<Normalizer>(new UnicodeForm(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (type == "NFD") return std::unique_ptr<Normalizer>(new UnicodeForm(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE));
  if (type == "NFKC") {
    return std::unique_ptr<Normalizer>(new UnicodeForm(UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT));
  }
  if (type == "NFKD") {
    return std::unique_ptr<Normalizer>(new UnicodeForm(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT));
  }
  if (type == "Lowercase") return std::unique_ptr<Normalizer>(new Lowercase());
  if (type == "Replace") {
    KEEL_ASSIGN_OR_RETURN(const Json* pattern, get_field(j, "pattern", where));
    KEEL_ASSIGN_OR_RETURN(Regex re, parse_pattern(*pattern, where + ".pattern"));
    KEEL_ASSIGN_OR_RETURN(std::string content, get_string(j, "content", where));
    return std::unique_ptr<Normalizer>(new Replace(std::move(re), std::move(content)));
  }
  if (type == "Prepend") {
    KEEL_ASSIGN_OR_RETURN(std::string prefix, get_string(j, "prepend", where));
    return std::unique_ptr<Normalizer>(new Prepend(std::move(prefix)));
  }
  if (type == "Strip") {
    KEEL_ASSIGN_OR_RETURN(bool left, get_bool_or(j, "strip_left", true, where));
    KEEL_ASSIGN_OR_RETURN(bool right, get_bool_or(j, "strip_right", true, where));
    return std::unique_ptr<Normalizer>(new Strip(left, right));
  }
  if (type == "Sequence") {
    KEEL_ASSIGN_OR_RETURN(const Json* list, get_field(j, "normalizers", where));
    if (!list->is_array()) return corruption("{}.normalizers: expected an array", where);
    std::vector<std::unique_ptr<Normalizer>> items;
    for (size_t i = 0; i < list->size(); ++i) {
      KEEL_ASSIGN_OR_RETURN(auto item, parse_normalizer((*list)[i], fmt::format("{}.normalizers[{}]", where, i)));
      if (item) items.push_back(std::move(item));
    }
    return std::unique_ptr<Normalizer>(new Sequence(std::move(items)));
  }
  return unsupported("{}.type: normalizer '{}' is not supported (NFC, NFD, NFKC, NFKD, Lowercase, Replace, "
                     "Prepend, Strip, Sequence are)", where, type);
}

}  // namespace keel::tokenizer
