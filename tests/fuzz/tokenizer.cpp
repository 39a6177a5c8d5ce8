// Tokenizer encode and decode of arbitrary bytes. The first byte picks the tokenizer (the demo model's
// byte-level BPE; Qwen3's byte-level BPE and Gemma3's SentencePiece-style BPE when .npm-tokenizers holds them)
// and the flags; the rest is encoded as text, and read as little-endian int32 ids (any value) to decode, at
// once and one id at a time through the stream decoder.
#include <vector>

#include "fuzz.h"
#include "tokenizer/stream_decoder.h"
#include "tokenizer/tokenizer.h"

using keel::tokenizer::Tokenizer;

namespace {

const std::vector<Tokenizer>& tokenizers() {
  static const std::vector<Tokenizer> all = [] {
    std::vector<Tokenizer> out;
    for (const char* dir : {"models/demo", ".npm-tokenizers/qwen3/package/models", ".npm-tokenizers/gemma3/package/models"}) {
      keel::Result<Tokenizer> t = Tokenizer::load(keel::fuzz::source_path(dir));
      if (t.ok()) out.push_back(std::move(*t));
    }
    KEEL_FUZZ_CHECK(!out.empty());
    return out;
  }();
  return all;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  tokenizers();  // loads the files once, outside the per-input timeout
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t flags = data[0];
  const Tokenizer& tok = tokenizers()[(flags & 0x0f) % tokenizers().size()];
  const bool add_special = flags & 0x10, skip_special = flags & 0x20;
  data++, size--;

  std::vector<int32_t> ids = tok.encode(keel::fuzz::text(data, size), add_special);
  for (int32_t id : ids) KEEL_FUZZ_CHECK(id >= 0 && id < tok.vocab_size());
  (void)tok.decode(ids, skip_special);

  std::vector<int32_t> raw(size / 4);
  for (int32_t& id : raw) id = static_cast<int32_t>(keel::fuzz::take_uint(data, size, 4));
  const std::string whole = tok.decode(raw, skip_special);
  keel::tokenizer::StreamDecoder stream(tok, skip_special);
  std::string streamed;
  for (int32_t id : raw) streamed += stream.step(id);
  streamed += stream.flush();
  // stream_decoder.h's promise, which holds while at most 64 ids are held back and no byte-fallback token
  // (<0xXX>) is among them (its documented exception).
  bool byte_fallback = false;
  for (int32_t id : raw) {
    std::optional<std::string> t = tok.id_to_token(id);
    byte_fallback |= t && t->size() == 6 && t->starts_with("<0x");
  }
  if (raw.size() < 64 && !byte_fallback) KEEL_FUZZ_CHECK(streamed == whole);
  return 0;
}
