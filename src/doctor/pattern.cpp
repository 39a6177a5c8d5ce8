#define PCRE2_CODE_UNIT_WIDTH 8
#include "doctor/pattern.h"

#include <pcre2.h>

namespace keel::doctor {

struct Pattern::Code {
  pcre2_code* code = nullptr;
  ~Code() { pcre2_code_free(code); }
};

Result<Pattern> Pattern::compile(const std::string& regex) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(regex.data()), regex.size(),
                                   PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &error, &offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    return invalid_argument("regex '{}': {} at offset {}", regex, reinterpret_cast<char*>(message),
                            offset);
  }
  auto owned = std::make_shared<Code>();
  owned->code = code;
  return Pattern(regex, std::move(owned));
}

bool Pattern::search(std::string_view text) const {
  pcre2_match_data* match = pcre2_match_data_create_from_pattern(code_->code, nullptr);
  int rc = pcre2_match(code_->code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), 0, 0,
                       match, nullptr);
  pcre2_match_data_free(match);
  return rc >= 0;
}

}  // namespace keel::doctor
