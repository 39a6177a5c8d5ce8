#include "tokenizer/synthetic.h"

#include <nlohmann/json.hpp>

#include "tokenizer/unicode.h"

namespace keel::tokenizer {

namespace {

// GPT-2's byte-to-unicode table: printable bytes stand for themselves, the rest map to U+0100 upwards.
std::vector<std::string> byte_level_alphabet() {
  std::vector<std::string> out(256);
  int next = 256;
  for (int b = 0; b < 256; b++) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    std::string s;
    append_utf8(s, printable ? static_cast<char32_t>(b) : static_cast<char32_t>(next++));
    out[b] = s;
  }
  return out;
}

}  // namespace

Result<Tokenizer> synthetic_tokenizer(int32_t vocab_size) {
  if (vocab_size < 256) return invalid_argument("synthetic tokenizer: vocab_size {} is below the 256 byte tokens", vocab_size);
  const std::vector<std::string> bytes = byte_level_alphabet();
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; b++) vocab[bytes[b]] = b;
  // " w<id>" in the byte-level alphabet: the space is byte 0x20, shown as bytes[0x20].
  for (int32_t id = 256; id < vocab_size; id++) vocab[bytes[' '] + "w" + std::to_string(id)] = id;
  const nlohmann::json tokenizer = {
      {"version", "1.0"},
      {"added_tokens", nlohmann::json::array()},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()}, {"byte_fallback", false}}},
  };
  return Tokenizer::from_json(tokenizer.dump());
}

}  // namespace keel::tokenizer
