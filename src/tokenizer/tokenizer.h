// A Hugging Face tokenizer read from a model (or tokenizer-only) directory: tokenizer.json, plus
// tokenizer_config.json (bos/eos tokens) and generation_config.json (eos ids) when present. Encoding and
// decoding match HF `tokenizers` exactly (tests/golden/gen_tokenizers.py holds the reference).
//
//   KEEL_ASSIGN_OR_RETURN(auto tok, keel::tokenizer::Tokenizer::load(dir));
//   std::vector<int32_t> ids = tok.encode("Hello", /*add_special=*/false);
//   std::string text = tok.decode(ids, /*skip_special=*/true);
//
// A Tokenizer is immutable after load and safe to use from several threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace keel::env {
class Env;
}

namespace keel::tokenizer {

class Tokenizer {
 public:
  static Result<Tokenizer> load(const std::string& dir, env::Env* env = nullptr);
  // From file contents; `config_json` and `generation_config_json` may be empty.
  static Result<Tokenizer> from_json(std::string_view tokenizer_json, std::string_view config_json = {},
                                     std::string_view generation_config_json = {});

  // Special tokens written in `text` are recognised. `add_special` adds what the post-processor adds
  // (Gemma's <bos>), as HF's encode(text, add_special_tokens=True). Invalid UTF-8 is read as U+FFFD.
  std::vector<int32_t> encode(std::string_view text, bool add_special) const;
  // Unknown ids are skipped, as HF does. `skip_special` drops special added tokens.
  std::string decode(std::span<const int32_t> ids, bool skip_special) const;

  // The bytes token `id` adds to a text after other tokens, unrepaired (Decoder::raw_bytes): byte-level
  // characters as their bytes, <0xXX> as its byte, SentencePiece's ▁ as a space; a special token's content as written.
  // "" for an unknown id. What grammars match tokens against (grammar/).
  std::string token_bytes(int32_t id) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  std::optional<std::string> id_to_token(int32_t id) const;
  // One past the largest id the tokenizer knows (vocab and added tokens).
  int32_t vocab_size() const;
  bool is_special(int32_t id) const;

  std::optional<int32_t> bos_id() const;
  // generation_config.json's eos_token_id (one or a list), then tokenizer_config.json's eos_token.
  const std::vector<int32_t>& eos_ids() const;
  // tokenizer_config.json's bos_token / eos_token strings ("" when absent), for chat templates.
  const std::string& bos_token() const;
  const std::string& eos_token() const;

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace keel::tokenizer
