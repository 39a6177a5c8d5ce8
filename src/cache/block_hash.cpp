#include "cache/block_hash.h"

// The state lives on the stack (no allocation per hash), which needs the full struct definition.
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include <algorithm>
#include <bit>
#include <cstring>

namespace keel::cache {

static_assert(std::endian::native == std::endian::little, "hashes are defined over little-endian integers");

namespace {

// Hashes length-prefixed fields so that ("ab","c") and ("a","bc") differ.
class Hasher {
 public:
  Hasher() { XXH3_128bits_reset(&state_); }
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;

  void bytes(const void* data, size_t n) { XXH3_128bits_update(&state_, data, n); }
  void u32(uint32_t v) { bytes(&v, sizeof(v)); }
  void u64(uint64_t v) { bytes(&v, sizeof(v)); }
  void field(std::string_view s) {
    u64(s.size());
    bytes(s.data(), s.size());
  }
  void hash(const Hash128& h) {
    u64(h.lo);
    u64(h.hi);
  }
  Hash128 digest() const {
    XXH128_hash_t d = XXH3_128bits_digest(&state_);
    return Hash128{d.low64, d.high64};
  }

 private:
  XXH3_state_t state_;
};

}  // namespace

std::string Hash128::hex() const { return fmt::format("{:016x}{:016x}", hi, lo); }

Result<Hash128> Hash128::parse_hex(std::string_view hex) {
  if (hex.size() != 32) return invalid_argument("fingerprint '{}': expected 32 hex digits, got {}", hex, hex.size());
  uint64_t parts[2] = {0, 0};
  for (size_t i = 0; i < 32; i++) {
    char c = hex[i];
    int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (v < 0) return invalid_argument("fingerprint '{}': '{}' is not a hex digit", hex, c);
    parts[i / 16] = (parts[i / 16] << 4) | static_cast<uint64_t>(v);
  }
  return Hash128{parts[1], parts[0]};
}

ModelFingerprint model_fingerprint(std::string_view weights_identity, std::string_view weights_dtype,
                                   const KvLayout& layout, uint32_t kv_format_version) {
  Hasher h;
  h.field("keel model fingerprint");
  h.u32(kv_format_version);
  h.field(weights_identity);
  h.field(weights_dtype);
  h.u32(layout.num_layers);
  h.u32(layout.num_kv_heads);
  h.u32(layout.head_dim);
  h.u32(layout.block_size);
  h.field(dtype_name(layout.kv_dtype));
  return h.digest();
}

Result<std::string> weights_identity(env::Env* env, const std::string& model_dir) {
  KEEL_ASSIGN_OR_RETURN(std::vector<std::string> names, env->list_dir(model_dir));
  std::sort(names.begin(), names.end());
  std::string identity;
  int files = 0;
  for (const std::string& name : names) {
    if (!name.ends_with(".safetensors")) continue;
    std::string path = env::join_path(model_dir, name);
    KEEL_ASSIGN_OR_RETURN(auto file, env->map_file(path));
    if (file->size() < 8) return corruption("{}: {} bytes, too short for a safetensors header", path, file->size());
    uint64_t header_len = 0;
    std::memcpy(&header_len, file->data(), 8);
    if (header_len > file->size() - 8)
      return corruption("{}: header length {} exceeds the file ({} bytes)", path, header_len, file->size());
    identity += fmt::format("{}\n{}\n", name, file->size());
    identity.append(reinterpret_cast<const char*>(file->data()) + 8, header_len);
    identity += '\n';
    files++;
  }
  if (files == 0) return not_found("{}: no *.safetensors files", model_dir);
  return identity;
}

BlockHash block_hash(const ModelFingerprint& fingerprint, const BlockHash& parent, std::span<const int32_t> tokens) {
  Hasher h;
  h.hash(fingerprint);
  h.hash(parent);
  h.u64(tokens.size());
  h.bytes(tokens.data(), tokens.size_bytes());
  return h.digest();
}

std::vector<BlockHash> hash_blocks(const ModelFingerprint& fingerprint, std::span<const int32_t> tokens,
                                   int block_size) {
  std::vector<BlockHash> out;
  if (block_size <= 0) return out;
  BlockHash parent;
  for (size_t begin = 0; begin + block_size <= tokens.size(); begin += block_size) {
    parent = block_hash(fingerprint, parent, tokens.subspan(begin, block_size));
    out.push_back(parent);
  }
  return out;
}

}  // namespace keel::cache
