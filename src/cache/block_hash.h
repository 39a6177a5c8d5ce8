// Chained block hashes: a full KV block is named by H(model fingerprint, parent hash, its token ids), so equal
// names mean equal prefixes of the same model and KV layout. H is SHA-256 (truncated to 128 bits): clients choose
// the tokens, and a key they could collide on purpose would let one tenant read or poison another's prefix
// (vLLM's CVE-2025-25183). The model fingerprint, which no client chooses, stays XXH3-128. The model fingerprint covers
// the weights' identity, dtype, KV layout and keel's KV format version: a block from another model or
// layout can never match.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/dtype.h"
#include "base/status.h"
#include "env/env.h"

namespace keel::cache {

// Bumped whenever the bytes of a KV block change meaning (layout of K/V within a block, scaling, rope
// applied or not). Old caches then stop matching instead of being misread.
inline constexpr uint32_t kKvFormatVersion = 1;

struct Hash128 {
  uint64_t lo = 0;
  uint64_t hi = 0;

  bool is_zero() const { return lo == 0 && hi == 0; }
  friend bool operator==(const Hash128&, const Hash128&) = default;
  // 32 lowercase hex digits, high half first.
  std::string hex() const;
  static Result<Hash128> parse_hex(std::string_view hex);
};

using BlockHash = Hash128;
using ModelFingerprint = Hash128;

// Real hashes are uniform already; the splitmix64 finalizer keeps hand-made ones (tests) from colliding.
struct Hash128Hasher {
  size_t operator()(const Hash128& h) const {
    uint64_t x = h.lo ^ ((h.hi << 29) | (h.hi >> 35));
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return static_cast<size_t>(x ^ (x >> 31));
  }
};

// How KV is laid out in one block; part of the fingerprint and of every SSD record.
struct KvLayout {
  uint32_t num_layers = 0;
  uint32_t num_kv_heads = 0;
  uint32_t head_dim = 0;
  uint32_t block_size = 0;  // tokens per block
  DType kv_dtype = DType::kBF16;
  friend bool operator==(const KvLayout&, const KvLayout&) = default;
};

// `weights_identity` names the weights (weights_identity() below, or any caller-chosen string that changes
// whenever the weights do); `weights_dtype` is the dtype the model computes in ("BF16").
ModelFingerprint model_fingerprint(std::string_view weights_identity, std::string_view weights_dtype,
                                   const KvLayout& layout, uint32_t kv_format_version = kKvFormatVersion);

// The identity of the weights in `model_dir`: for every *.safetensors file in name order, its name, size
// and JSON header (names, dtypes, shapes, offsets of every tensor). Cheap (reads headers only) and changes
// when any tensor is added, reshaped or retyped, or a file is replaced by one of another size.
Result<std::string> weights_identity(env::Env* env, const std::string& model_dir);

// SHA-256 over the fingerprint, the parent, the token count and the tokens, truncated to 128 bits. The first
// block's parent is zero, or a request's salt key (salt_key) so that tenants with different salts share nothing.
BlockHash block_hash(const ModelFingerprint& fingerprint, const BlockHash& parent, std::span<const int32_t> tokens);

// The first block's parent for a request with `cache_salt` (zero for an empty one: no salt).
BlockHash salt_key(std::string_view cache_salt);

// Hashes of every full block of `tokens` (a trailing partial block has none), each chained on the last; the
// first on `first_parent` (zero, or a salt key).
std::vector<BlockHash> hash_blocks(const ModelFingerprint& fingerprint, std::span<const int32_t> tokens,
                                   int block_size, const BlockHash& first_parent = {});

}  // namespace keel::cache
