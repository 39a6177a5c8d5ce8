// The SSD tier's index checkpoint reader, decode_checkpoint. With the first byte odd the input's last 8 bytes
// are replaced by its true checksum, so the decoder's length and count checks are reached; whatever decodes
// must encode and decode back to the same checkpoint.
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include <cstring>

#include "cache/ssd_format.h"
#include "fuzz.h"

using namespace keel::cache::ssd;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool fix_checksum = data[0] & 1;
  std::string bytes(keel::fuzz::text(data + 1, size - 1));
  if (fix_checksum && bytes.size() >= 8) {
    const uint64_t sum = XXH3_64bits(bytes.data(), bytes.size() - 8);
    std::memcpy(bytes.data() + bytes.size() - 8, &sum, 8);
  }
  keel::Result<Checkpoint> c = decode_checkpoint(bytes);
  if (!c.ok()) return 0;
  const std::string encoded = encode_checkpoint(*c);
  keel::Result<Checkpoint> again = decode_checkpoint(encoded);
  KEEL_FUZZ_CHECK(again.ok());
  KEEL_FUZZ_CHECK(encode_checkpoint(*again) == encoded);
  KEEL_FUZZ_CHECK(again->fingerprint == c->fingerprint && again->segments.size() == c->segments.size());
  return 0;
}
