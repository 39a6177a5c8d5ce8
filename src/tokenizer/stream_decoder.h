// Streaming detokenizer for the server: ids arrive one at a time and only whole UTF-8 characters leave.
// A character split over several byte tokens is held back until it is complete; the concatenation of all
// step() outputs plus flush() equals Tokenizer::decode of all the ids. One exception (fuzz/tokenizer, Gemma 3):
// ByteFallback decodes a run of byte tokens (<0xXX>) that is not valid UTF-8 as one U+FFFD per byte, so a run
// whose valid start was already sent (<0x11>) and that later turns invalid (<0xE9>, then a non-continuation)
// is sent again as U+FFFDs. Holding every run to its end would instead stall a stream of byte tokens.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace keel::tokenizer {

class StreamDecoder {
 public:
  StreamDecoder(const Tokenizer& tokenizer, bool skip_special)
      : tokenizer_(&tokenizer), skip_special_(skip_special) {}

  // The text that became complete with `id`; often empty while a character is still incomplete.
  std::string step(int32_t id);
  // Whatever is still held back (an incomplete character at the very end comes out as U+FFFD).
  std::string flush();

 private:
  // Emits what decoding the window adds beyond the already emitted prefix, and slides the window.
  std::string emit(const std::string& text);

  const Tokenizer* tokenizer_;
  bool skip_special_;
  std::vector<int32_t> ids_;  // a few already emitted ids (context for the decoder), then pending ones
  size_t prefix_ids_ = 0;     // how many of ids_ are already emitted
  std::string prefix_;        // decode(ids_[0, prefix_ids_))
};

}  // namespace keel::tokenizer
