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
  // One token's bytes where it stands inside a text: no UTF-8 repair (a byte-level token may hold part of a
  // character), nothing stripped at the start. What a grammar over bytes matches tokens against. By default the
  // token decoded alone.
  virtual void raw_bytes(std::string& token) const {
    std::vector<std::string> one{std::move(token)};
    decode_chain(one);
    token.clear();
    for (const std::string& t : one) token += t;
  }
};

// A null JSON value gives nullptr: tokens are then joined with spaces, as HF does.
Result<std::unique_ptr<Decoder>> parse_decoder(const Json& j, const std::string& where);

}  // namespace keel::tokenizer
