// A .safetensors file from bytes: the 8-byte header length, the JSON header, the data. Every tensor the
// parser accepts must lie inside the file; its first and last bytes are read to prove it (ASan checks).
#include "format/safetensors.h"
#include "fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto file = std::make_unique<keel::fuzz::BytesFile>(data, size, "fuzz.safetensors");
  const uint8_t* begin = file->data();
  const uint8_t* end = begin + file->size();
  keel::Result<std::unique_ptr<keel::format::SafetensorsFile>> parsed =
      keel::format::SafetensorsFile::parse(std::move(file));
  if (!parsed.ok()) return 0;
  volatile uint8_t sink = 0;
  for (const auto& [name, t] : (*parsed)->tensors()) {
    const size_t n = t.nbytes();
    KEEL_FUZZ_CHECK(t.data >= begin && n <= static_cast<size_t>(end - t.data));
    (void)t.shape_str();
    if (n > 0) sink = sink + t.data[0] + t.data[n - 1];
  }
  return 0;
}
