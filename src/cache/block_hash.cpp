#include "cache/block_hash.h"

// The state lives on the stack (no allocation per hash), which needs the full struct definition.
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <algorithm>
#include <bit>
#include <cstring>

#include "base/check.h"

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
  if (model_dir.ends_with(".gguf") && !env->is_directory(model_dir)) {
    // One GGUF file: its name, size and the head of the file, which holds the metadata and every tensor's name,
    // type, shape and offset (what a safetensors header is to a directory); 8 MiB covers a 150k-token vocabulary.
    KEEL_ASSIGN_OR_RETURN(auto file, env->map_file(model_dir));
    const size_t head = std::min<size_t>(file->size(), size_t{8} << 20);
    std::string identity = fmt::format("gguf\n{}\n", file->size());
    identity.append(reinterpret_cast<const char*>(file->data()), head);
    return identity;
  }
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

namespace {

// SHA-256 through a digest fetched once and a context reused per thread: OpenSSL 3's one-shot SHA256() looks the
// algorithm up on every call (measured 3.0-3.5 us a block against 1.1-1.2 us this way, same loaded machine).
void sha256(const void* data, size_t n, unsigned char (&digest)[SHA256_DIGEST_LENGTH]) {
  struct Sha256 {
    EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~Sha256() {
      EVP_MD_CTX_free(ctx);
      EVP_MD_free(md);
    }
  };
  thread_local Sha256 s;
  unsigned int len = 0;
  KEEL_CHECK(s.md != nullptr && s.ctx != nullptr && EVP_DigestInit_ex(s.ctx, s.md, nullptr) == 1 &&
                 EVP_DigestUpdate(s.ctx, data, n) == 1 && EVP_DigestFinal_ex(s.ctx, digest, &len) == 1 &&
                 len == SHA256_DIGEST_LENGTH,
             "OpenSSL SHA-256 of {} bytes failed", n);
}

// The first 16 bytes of a SHA-256 digest as a Hash128 (lo = bytes 0..7, little-endian).
Hash128 truncated(const unsigned char (&digest)[SHA256_DIGEST_LENGTH]) {
  Hash128 out;
  std::memcpy(&out.lo, digest, 8);
  std::memcpy(&out.hi, digest + 8, 8);
  return out;
}

}  // namespace

BlockHash block_hash(const ModelFingerprint& fingerprint, const BlockHash& parent, std::span<const int32_t> tokens) {
  // One contiguous message (no allocation for blocks of up to 256 tokens): fingerprint, parent, u64 count,
  // tokens as i32, all little-endian.
  constexpr size_t kFixed = 16 + 16 + 8;
  unsigned char stack[kFixed + 256 * sizeof(int32_t)];
  std::vector<unsigned char> heap;
  const size_t n = kFixed + tokens.size_bytes();
  unsigned char* m = stack;
  if (n > sizeof(stack)) {
    heap.resize(n);
    m = heap.data();
  }
  const uint64_t count = tokens.size();
  std::memcpy(m, &fingerprint.lo, 8);
  std::memcpy(m + 8, &fingerprint.hi, 8);
  std::memcpy(m + 16, &parent.lo, 8);
  std::memcpy(m + 24, &parent.hi, 8);
  std::memcpy(m + 32, &count, 8);
  if (!tokens.empty()) std::memcpy(m + kFixed, tokens.data(), tokens.size_bytes());
  unsigned char digest[SHA256_DIGEST_LENGTH];
  sha256(m, n, digest);
  return truncated(digest);
}

BlockHash salt_key(std::string_view cache_salt) {
  if (cache_salt.empty()) return BlockHash{};
  std::string m = "keel cache salt";
  const uint64_t len = cache_salt.size();
  m.append(reinterpret_cast<const char*>(&len), 8);
  m.append(cache_salt);
  unsigned char digest[SHA256_DIGEST_LENGTH];
  sha256(m.data(), m.size(), digest);
  return truncated(digest);
}

std::vector<BlockHash> hash_blocks(const ModelFingerprint& fingerprint, std::span<const int32_t> tokens,
                                   int block_size, const BlockHash& first_parent) {
  std::vector<BlockHash> out;
  if (block_size <= 0) return out;
  BlockHash parent = first_parent;
  for (size_t begin = 0; begin + block_size <= tokens.size(); begin += block_size) {
    parent = block_hash(fingerprint, parent, tokens.subspan(begin, block_size));
    out.push_back(parent);
  }
  return out;
}

}  // namespace keel::cache
