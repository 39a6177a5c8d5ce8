// Helpers shared by the SSD tier and format tests.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "cache/block_hash.h"
#include "cache/ssd_format.h"
#include "cache/ssd_tier.h"

namespace keel::cache::testing {

inline const KvLayout kLayout{.num_layers = 2, .num_kv_heads = 2, .head_dim = 8, .block_size = 4,
                              .kv_dtype = DType::kBF16};
inline constexpr size_t kPayload = 64;
inline constexpr size_t kRecord = ssd::kHeaderBytes + kPayload;

inline ModelFingerprint test_fingerprint() { return model_fingerprint("test weights", "BF16", kLayout); }
inline ModelFingerprint other_fingerprint() { return model_fingerprint("other weights", "BF16", kLayout); }

// Fresh directories under one per-process root, removed when the test program exits.
inline std::string temp_dir() {
  struct Root {
    std::string path;
    int next = 0;
    Root() {
      char tmpl[] = "/tmp/keel_ssd_XXXXXX";
      path = mkdtemp(tmpl);
    }
    ~Root() { std::filesystem::remove_all(path); }
  };
  static Root root;
  std::string dir = root.path + "/" + std::to_string(root.next++);
  std::filesystem::create_directory(dir);
  return dir;
}

inline BlockHash block(uint64_t i) { return BlockHash{i * 0x9e3779b97f4a7c15ull + 1, i}; }
inline BlockHash parent_of(uint64_t i) { return i == 0 ? BlockHash{} : block(i - 1); }

inline std::vector<uint8_t> payload(uint64_t i, size_t n = kPayload) {
  std::vector<uint8_t> p(n);
  for (size_t k = 0; k < n; k++) p[k] = static_cast<uint8_t>(i * 131 + k * 7);
  return p;
}

inline SsdTierOptions tier_options(const std::string& dir) {
  SsdTierOptions o;
  o.dir = dir;
  o.max_bytes = 64ull << 20;
  o.segment_bytes = 1ull << 20;
  o.queue_blocks = 64;
  o.max_payload_bytes = kPayload;
  o.fingerprint = test_fingerprint();
  o.layout = kLayout;
  o.pause_micros = 3600ull * 1000 * 1000;
  return o;
}

// Puts blocks [begin, end), flushing whenever the queue could be full, so none is dropped.
inline void put_blocks(SsdTier& tier, uint64_t begin, uint64_t end) {
  for (uint64_t i = begin; i < end; i++) {
    tier.put(block(i), parent_of(i), kLayout.block_size, payload(i));
    if ((i - begin + 1) % 32 == 0) tier.flush();
  }
  tier.flush();
}

// True when the tier serves block i with exactly its bytes.
inline bool serves(SsdTier& tier, uint64_t i) {
  std::vector<uint8_t> out(kPayload);
  size_t n = 0;
  return tier.get(block(i), out, &n) && n == kPayload && out == payload(i);
}

// One encoded record, as the tier would write it (the header fields may be overridden).
inline std::string encode_record(const ssd::RecordHeader& h, const std::vector<uint8_t>& p) {
  std::string out(ssd::kHeaderBytes, '\0');
  ssd::encode_header(h, p, reinterpret_cast<uint8_t*>(out.data()));
  out.append(reinterpret_cast<const char*>(p.data()), p.size());
  return out;
}

inline ssd::RecordHeader header_for(uint64_t i, const ModelFingerprint& fp = test_fingerprint()) {
  ssd::RecordHeader h;
  h.fingerprint = fp;
  h.hash = block(i);
  h.parent = parent_of(i);
  h.n_tokens = kLayout.block_size;
  h.layout = kLayout;
  return h;
}

}  // namespace keel::cache::testing
