// What the fuzz targets share. Each tests/fuzz/<target>.cpp defines LLVMFuzzerTestOneInput and is built twice:
// with libFuzzer (`make fuzz`, clang, KEEL_FUZZ=ON) and with replay_main.cpp (`make test` replays
// tests/fuzz/corpus/<target>/). A target must not crash, hang or leak on any input; anything it rejects must be
// rejected with an error value. Checks of the code's own promises use KEEL_FUZZ_CHECK, which aborts (a finding).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "env/env.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
// Optional: runs once before the first input (libFuzzer does not count it against -timeout). Targets that load
// model files do it here.
extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(int* argc, char*** argv);

#define KEEL_FUZZ_CHECK(cond)                                                              \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      std::fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond);   \
      std::abort();                                                                        \
    }                                                                                      \
  } while (0)

namespace keel::fuzz {

inline std::string_view text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// A path in the source tree: real model files (models/demo) and tokenizers (.npm-tokenizers) the targets load.
inline std::string source_path(const std::string& relative) { return env::join_path(KEEL_SOURCE_DIR, relative); }

// Bytes held in memory, read through the same interface as a mapped file.
class BytesFile final : public env::MappedFile {
 public:
  BytesFile(const uint8_t* data, size_t size, std::string path)
      : bytes_(reinterpret_cast<const char*>(data), size), path_(std::move(path)) {}
  const uint8_t* data() const override { return reinterpret_cast<const uint8_t*>(bytes_.data()); }
  size_t size() const override { return bytes_.size(); }
  const std::string& path() const override { return path_; }

 private:
  std::string bytes_;  // a copy, so ASan sees the exact bounds of the input
  std::string path_;
};

// Reads a little-endian integer of `n` bytes from the front of the input, consuming them (0 past the end).
inline uint64_t take_uint(const uint8_t*& data, size_t& size, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n && size > 0; i++, data++, size--) v |= static_cast<uint64_t>(*data) << (8 * i);
  return v;
}

}  // namespace keel::fuzz
