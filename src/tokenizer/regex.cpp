#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/regex.h"

#include <pcre2.h>

#include "tokenizer/unicode.h"

namespace keel::tokenizer {

namespace {

constexpr const char* kSpaceClass =
    "\\t-\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}";

}  // namespace

struct Regex::Code {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Code() { pcre2_code_free(code); }
};

std::string onig_compatible(const std::string& p) {
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      char n = p[i + 1];
      if (n == 's') {
        out += in_class ? std::string(kSpaceClass) : "[" + std::string(kSpaceClass) + "]";
      } else if (n == 'S' && !in_class) {
        out += "[^" + std::string(kSpaceClass) + "]";
      } else {
        out += c;
        out += n;
      }
      ++i;
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal member, not the end of the class.
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];
      continue;
    }
    if (c == ']' && in_class) in_class = false;
    out += c;
  }
  return out;
}

Result<Regex> Regex::compile(const std::string& pattern) {
  std::string rewritten = onig_compatible(pattern);
  int err = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(rewritten.data()), rewritten.size(),
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &err, &offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(err, buf, sizeof(buf));
    return invalid_argument("regex '{}': {} at offset {}", pattern, reinterpret_cast<const char*>(buf),
                            static_cast<size_t>(offset));
  }
  auto shared = std::make_shared<Code>();
  shared->code = code;
  shared->jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  Regex r;
  r.code_ = std::move(shared);
  return r;
}

Result<Regex> Regex::literal(const std::string& text) {
  std::string quoted;
  for (char c : text) {
    if (std::string_view("\\^$.|?*+()[]{}").find(c) != std::string_view::npos) quoted += '\\';
    quoted += c;
  }
  return compile(quoted);
}

size_t Regex::utf8_step(std::string_view text, size_t at) {
  return utf8_len(static_cast<unsigned char>(text[at]));
}

bool Regex::find(std::string_view text, size_t from, size_t& start, size_t& end) const {
  // Match data is small; one per thread keeps Regex usable from several threads at once.
  thread_local std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> md(
      pcre2_match_data_create(32, nullptr), &pcre2_match_data_free);
  auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  int rc = PCRE2_ERROR_JIT_STACKLIMIT;
  if (code_->jit) rc = pcre2_jit_match(code_->code, subject, text.size(), from, 0, md.get(), nullptr);
  // The interpreter (heap-backed) takes over when there is no JIT or its 32 KiB stack runs out.
  if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) {
    rc = pcre2_match(code_->code, subject, text.size(), from, PCRE2_NO_UTF_CHECK, md.get(), nullptr);
  }
  if (rc < 0) return false;
  const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
  start = ov[0];
  end = ov[1];
  return true;
}

// HF patterns are {"String": "..."} or {"Regex": "..."}.
Result<Regex> parse_pattern(const Json& j, const std::string& where) {
  if (j.is_object() && j.contains("String") && j["String"].is_string()) return Regex::literal(j["String"]);
  if (j.is_object() && j.contains("Regex") && j["Regex"].is_string()) {
    auto r = Regex::compile(j["Regex"]);
    if (!r.ok()) return r.status().with_context(where);
    return r;
  }
  return corruption("{}: expected {{\"String\": ...}} or {{\"Regex\": ...}}", where);
}

}  // namespace keel::tokenizer
