// The BPE model (tokenizer.json "model" of type BPE): vocab, ranked merges, byte fallback, unk fusing and a
// cache of words already tokenized. Works for byte-level vocabularies (Qwen, Llama 3) and SentencePiece-style
// ones with <0xXX> byte tokens (Gemma) alike: the pre-tokenizer decides what a "word" is.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/json_fields.h"

namespace keel::tokenizer {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using TokenMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

class Bpe {
 public:
  // `where` is the JSON path of the model object ("model").
  static Result<Bpe> from_json(const Json& model, const std::string& where);

  // Appends the ids of one pre-tokenized word.
  void tokenize(std::string_view word, std::vector<int32_t>& out) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  // nullptr when `id` is not in the vocab.
  const std::string* id_to_token(int32_t id) const;
  // One past the largest id in the vocab.
  int32_t id_limit() const { return static_cast<int32_t>(id_to_token_.size()); }

  Bpe(Bpe&&) noexcept;
  Bpe& operator=(Bpe&&) noexcept;
  ~Bpe();

 private:
  Bpe();
  struct MergeTable;
  struct Cache;

  void tokenize_one(std::string_view word, std::vector<int32_t>& out) const;
  void merge_word(std::string_view word, std::vector<int32_t>& out) const;

  TokenMap vocab_;
  std::vector<std::string> id_to_token_;
  std::unique_ptr<MergeTable> merges_;
  std::unique_ptr<Cache> cache_;
  std::optional<int32_t> unk_id_;
  std::string continuing_subword_prefix_;
  std::string end_of_word_suffix_;
  bool byte_fallback_ = false;
  bool fuse_unk_ = false;
  bool ignore_merges_ = false;
  std::array<int32_t, 256> byte_tokens_{};  // id of <0xXX>, or -1
  // SentencePiece-style models (Gemma) see whole sentences as one word. A merge can only join across a
  // "▁" that follows another character if some vocab token has "▁" there (Gemma has one: ">▁</"). So
  // words are cut before such a "▁" unless one of those tokens matches around it, and the pieces reuse
  // the cache: the same ids, several times faster. Empty when the vocab does not allow it.
  std::string split_before_;
  std::vector<std::pair<std::string, size_t>> crossings_;  // (token, offset of its inner "▁")
};

}  // namespace keel::tokenizer
