// Post-processors (tokenizer.json "post_processor"): the ids added around a single sequence when encoding
// with add_special. TemplateProcessing (Gemma's <bos>), Bert/Roberta, ByteLevel (adds nothing), Sequence.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/json_fields.h"

namespace keel::tokenizer {

struct PostProcessor {
  std::vector<int32_t> prefix;
  std::vector<int32_t> suffix;

  // A null JSON value gives no prefix and no suffix.
  static Result<PostProcessor> from_json(const Json& j, const std::string& where);
};

}  // namespace keel::tokenizer
