// A compiled PCRE2 regular expression for the known-issues signatures (the tokenizer uses PCRE2 too).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "base/status.h"

namespace keel::doctor {

class Pattern {
 public:
  static Result<Pattern> compile(const std::string& regex);

  // True when the pattern matches anywhere in `text`.
  bool search(std::string_view text) const;
  const std::string& source() const { return source_; }

 private:
  struct Code;
  Pattern(std::string source, std::shared_ptr<Code> code)
      : source_(std::move(source)), code_(std::move(code)) {}

  std::string source_;
  std::shared_ptr<Code> code_;  // shared: copies of a KnownIssues table reuse the compiled code
};

}  // namespace keel::doctor
