// Added tokens (tokenizer.json "added_tokens"): strings matched in the text before any normalization or
// pre-tokenization, each becoming its id directly. Special tokens such as <|im_start|> are added tokens.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/json_fields.h"

namespace keel::tokenizer {

class Normalizer;

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool special = false;
  bool lstrip = false;       // the match swallows whitespace on its left
  bool rstrip = false;       // ... and on its right
  bool normalized = false;   // matched in normalized text (after the normalizer) rather than raw text
  bool single_word = false;  // only matched when not inside a word
};

// A piece of text between matches, or a matched token (id >= 0).
struct AddedSplit {
  size_t start = 0;
  size_t end = 0;
  int32_t id = -1;
};

class AddedVocabulary {
 public:
  // `normalizer` (may be null) gives the form normalized tokens are matched in.
  static Result<AddedVocabulary> from_json(const Json& list, const Normalizer* normalizer,
                                           const std::string& where);

  // Splits `text` at the tokens whose `normalized` flag equals `normalized`, leftmost-longest as HF's
  // Aho-Corasick matcher does, applying single_word, lstrip and rstrip. Empty text gives no splits.
  void split(std::string_view text, bool normalized, std::vector<AddedSplit>& out) const;
  bool has_normalized() const { return !tries_[1].nodes.empty(); }

  const AddedToken* by_id(int32_t id) const;
  std::optional<int32_t> by_content(std::string_view content) const;
  const std::vector<AddedToken>& tokens() const { return tokens_; }
  int32_t id_limit() const { return id_limit_; }

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int32_t>> children;  // sorted by byte
    int32_t token = -1;                                      // index into tokens_
  };
  struct Trie {
    std::vector<Node> nodes;  // nodes[0] is the root when non-empty
    std::array<bool, 256> first{};
    void insert(std::string_view s, int32_t token);
    // The longest token starting at text[at], as (token index, end), or token -1.
    std::pair<int32_t, size_t> longest(std::string_view text, size_t at) const;
  };

  std::vector<AddedToken> tokens_;
  std::vector<int32_t> by_id_;  // id → index into tokens_, or -1
  Trie tries_[2];               // [0] raw text, [1] normalized text
  int32_t id_limit_ = 0;
};

}  // namespace keel::tokenizer
