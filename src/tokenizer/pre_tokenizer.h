// Pre-tokenizers (tokenizer.json "pre_tokenizer"): Split, ByteLevel, Metaspace, Digits, Sequence. They cut
// normalized text into words; the model then tokenizes each word on its own.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tokenizer/json_fields.h"

namespace keel::tokenizer {

struct Piece {
  std::string text;
  bool at_start = false;  // begins at offset 0 of the original text (Metaspace's prepend_scheme "first")
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces `pieces` by their splits, in order; empty pieces are dropped as HF does.
  virtual void pre_tokenize(std::vector<Piece>& pieces) const = 0;
};

// A null JSON value gives nullptr (the whole piece is one word).
Result<std::unique_ptr<PreTokenizer>> parse_pre_tokenizer(const Json& j, const std::string& where);

}  // namespace keel::tokenizer
