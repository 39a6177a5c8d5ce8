// Normalizers (tokenizer.json "normalizer"): NFC/NFD/NFKC/NFKD, Lowercase, Replace, Prepend, Strip, Sequence.
// They rewrite each piece of text that is not an added token, before pre-tokenization.
#pragma once

#include <memory>
#include <string>

#include "tokenizer/json_fields.h"

namespace keel::tokenizer {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& text) const = 0;
};

// `where` is the JSON path used in errors ("normalizer"). A null JSON value gives nullptr (no normalizer).
Result<std::unique_ptr<Normalizer>> parse_normalizer(const Json& j, const std::string& where);

}  // namespace keel::tokenizer
