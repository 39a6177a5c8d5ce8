// PCRE2 (UTF + Unicode properties, JIT) behind a small interface, with Oniguruma's meaning of \s and \S so
// that the regexes written for HF tokenizers (which uses Oniguruma) split text the same way.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "base/status.h"
#include "tokenizer/json_fields.h"

namespace keel::tokenizer {

class Regex {
 public:
  // `pattern` is an HF/Oniguruma regex. Errors name the pattern and the offset PCRE2 stopped at.
  static Result<Regex> compile(const std::string& pattern);
  // The pattern as a literal string (HF's `{"String": ...}` patterns).
  static Result<Regex> literal(const std::string& text);

  // Calls on_match(start, end) for each non-overlapping match in `text` (valid UTF-8), left to right.
  template <typename F>
  void for_each_match(std::string_view text, F&& on_match) const {
    size_t pos = 0;
    size_t start = 0, end = 0;
    while (pos <= text.size() && find(text, pos, start, end)) {
      on_match(start, end);
      // An empty match would loop forever: step over one character as Oniguruma's iterator does.
      pos = end > start ? end : end + (end < text.size() ? utf8_step(text, end) : 1);
    }
  }

  bool find(std::string_view text, size_t from, size_t& start, size_t& end) const;

 private:
  static size_t utf8_step(std::string_view text, size_t at);
  struct Code;
  std::shared_ptr<const Code> code_;
};

// Rewrites \s and \S into explicit classes of Unicode White_Space (Oniguruma's \s); PCRE2's UCP \s
// differs (e.g. U+0085 and U+180E across versions). Exposed for tests.
std::string onig_compatible(const std::string& pattern);

// An HF pattern object, {"String": "..."} (literal) or {"Regex": "..."}; `where` is its JSON path.
Result<Regex> parse_pattern(const Json& j, const std::string& where);

}  // namespace keel::tokenizer
