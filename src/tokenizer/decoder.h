// Decoders (tokenizer.json "decoder"): ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, Sequence.
// They turn token strings back into text; the results are concatenated.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tokenizer/json_fields.h"

namespace keel::tokenizer {

class Decoder {
 public:
  virtual ~Decoder() = default;
  // Rewrites the token strings in place (some decoders fuse them into one).
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

// A null JSON value gives nullptr: tokens are then joined with spaces, as HF does.
Result<std::unique_ptr<Decoder>> parse_decoder(const Json& j, const std::string& where);

}  // namespace keel::tokenizer
