// A tokenizer for synthetic models (keel serve --synthetic): random weights have no trained vocabulary, but the
// server still needs one to decode what it generates. Ids 0-255 are the 256 bytes (byte-level BPE, no merges, so
// text encodes byte by byte); every id from 256 up to vocab_size decodes as the word " w<id>". Nothing is special
// and there is no end-of-sequence token: a synthetic model generates until max_tokens.
#pragma once

#include "tokenizer/tokenizer.h"

namespace keel::tokenizer {

Result<Tokenizer> synthetic_tokenizer(int32_t vocab_size);

}  // namespace keel::tokenizer
