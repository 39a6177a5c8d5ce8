#include "tokenizer/normalizer.h"

#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>
#include <string_view>
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

std::string utf8proc_form(std::string_view text, int options) {
  utf8proc_uint8_t* out = nullptr;
  utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                    static_cast<utf8proc_ssize_t>(text.size()), &out,
                                    static_cast<utf8proc_option_t>(options));
  std::string result = n >= 0 ? std::string(reinterpret_cast<const char*>(out), static_cast<size_t>(n))
                              : std::string(text);
  std::free(out);
  return result;
}

class UnicodeForm : public Normalizer {
 public:
  explicit UnicodeForm(int options) : options_(options) {}
  void normalize(std::string& text) const override {
    if (is_ascii(text)) return;  // every normal form leaves ASCII as it is
    text = utf8proc_form(text, options_);
  }

 private:
  int options_;
};

// NFC as HF computes it (Unicode 9.0 tables), normalizing only around the characters that can change: NFC
// of the whole text cost a third of Qwen's encode time, and most text is already in NFC.
class Nfc : public Normalizer {
 public:
  void normalize(std::string& text) const override {
    if (is_ascii(text)) return;
    std::string out;
    size_t copied = 0;      // text[0, copied) is already in `out`
    size_t prev_start = 0;  // start of the last character that was left alone
    for (size_t i = 0; i < text.size();) {
      size_t start = i;
      Kind kind = kind_of(next_char(text, i));
      if (kind != Kind::kChanging) {
        // An inert character cannot compose with what follows either: a region starts after it.
        prev_start = kind == Kind::kInert ? i : start;
        continue;
      }
      // The preceding starter may compose with this character; what follows up to the next stable
      // character may reorder or compose with it. Nothing crosses a stable character.
      size_t begin = std::max(start > 0 ? prev_start : 0, copied);
      size_t end = i;
      for (size_t k = i; k < text.size();) {
        if (kind_of(next_char(text, k)) != Kind::kChanging) break;
        end = k;
      }
      out.append(text, copied, begin - copied);
      out += utf8proc_form(std::string_view(text).substr(begin, end - begin), UTF8PROC_STABLE | UTF8PROC_COMPOSE);
      copied = end;
      i = end;
      prev_start = end;
    }
    if (copied == 0) return;
    out.append(text, copied, std::string::npos);
    text = std::move(out);
  }

 private:
  enum class Kind : uint8_t {
    kChanging,  // NFC may change, move or compose it: normalize the region around it
    kStable,    // a starter NFC leaves alone and that never composes with a character before it
    kInert,     // unknown to HF's Unicode 9.0 tables: composes with nothing on either side
  };

  static Kind kind_of(char32_t c) {
    if (c < 0x80) return Kind::kStable;  // ASCII never follows another character in a composition
    if (c < 0x10000) return bmp_table()[c];
    return classify(c);
  }

  // (utf8proc marks "second" combiners with comb_index >= 0x8000.)
  static Kind classify(char32_t c) {
    // U+11A7 is Hangul's TBase, not a trailing consonant: it must not join a syllable before it, but
    // utf8proc 2.6 swallows it into one. Never handing it to utf8proc keeps it, as Unicode and HF do.
    if (c == 0x11A7 || nfc_unknown_to_unicode9(c)) return Kind::kInert;
    if (c >= 0xD800 && c <= 0xDFFF) return Kind::kChanging;
    if (c >= 0x1100 && c <= 0x11FF) return Kind::kChanging;  // Hangul jamo compose algorithmically
    const utf8proc_property_t* p = utf8proc_get_property(static_cast<utf8proc_int32_t>(c));
    if (p->combining_class != 0 || (p->comb_index != UINT16_MAX && p->comb_index >= 0x8000)) return Kind::kChanging;
    std::string one;
    append_utf8(one, c);
    return utf8proc_form(one, UTF8PROC_STABLE | UTF8PROC_COMPOSE) == one ? Kind::kStable : Kind::kChanging;
  }

  static const std::vector<Kind>& bmp_table() {
    static const std::vector<Kind> table = [] {
      std::vector<Kind> t(0x10000);
      for (char32_t c = 0; c < 0x10000; ++c) t[c] = classify(c);
      return t;
    }();
    return table;
  }
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
  if (type == "NFC") return std::unique_ptr<Normalizer>(new Nfc());
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
