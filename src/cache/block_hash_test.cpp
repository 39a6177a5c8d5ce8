#include "cache/block_hash.h"

#include <gtest/gtest.h>

#include <xxhash.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <unordered_set>

namespace keel::cache {
namespace {

const KvLayout kLayout{.num_layers = 28, .num_kv_heads = 8, .head_dim = 128, .block_size = 16,
                       .kv_dtype = DType::kBF16};

ModelFingerprint fp() { return model_fingerprint("qwen3-0.6b weights", "BF16", kLayout); }

std::vector<int32_t> iota_tokens(int n, int start = 0) {
  std::vector<int32_t> t(n);
  std::iota(t.begin(), t.end(), start);
  return t;
}

TEST(BlockHash, OnlyFullBlocksAreHashed) {
  auto tokens = iota_tokens(40);
  EXPECT_EQ(hash_blocks(fp(), tokens, 16).size(), 2u);
  EXPECT_EQ(hash_blocks(fp(), iota_tokens(15), 16).size(), 0u);
}

TEST(BlockHash, EachBlockChainsOnItsParent) {
  auto tokens = iota_tokens(48);
  auto hashes = hash_blocks(fp(), tokens, 16);
  ASSERT_EQ(hashes.size(), 3u);
  EXPECT_EQ(hashes[0], block_hash(fp(), BlockHash{}, std::span(tokens).subspan(0, 16)));
  EXPECT_EQ(hashes[1], block_hash(fp(), hashes[0], std::span(tokens).subspan(16, 16)));
  EXPECT_EQ(hashes[2], block_hash(fp(), hashes[1], std::span(tokens).subspan(32, 16)));
}

TEST(BlockHash, SameBlockAfterADifferentPrefixHasADifferentHash) {
  auto a = iota_tokens(32);
  auto b = a;
  b[3] = 999;  // first block differs, second block's tokens are equal
  auto ha = hash_blocks(fp(), a, 16);
  auto hb = hash_blocks(fp(), b, 16);
  EXPECT_NE(ha[0], hb[0]);
  EXPECT_NE(ha[1], hb[1]);
}

TEST(BlockHash, SharedPrefixSharesHashesUntilTheFirstDifference) {
  auto a = iota_tokens(64);
  auto b = a;
  b[40] = -1;
  auto ha = hash_blocks(fp(), a, 16);
  auto hb = hash_blocks(fp(), b, 16);
  EXPECT_EQ(ha[0], hb[0]);
  EXPECT_EQ(ha[1], hb[1]);
  EXPECT_NE(ha[2], hb[2]);
  EXPECT_NE(ha[3], hb[3]);
}

TEST(BlockHash, IsDeterministicAndDistinctAcrossManyBlocks) {
  std::unordered_set<BlockHash, Hash128Hasher> seen;
  for (int i = 0; i < 10000; i++) {
    auto t = iota_tokens(16, i);
    BlockHash h = block_hash(fp(), BlockHash{}, t);
    EXPECT_EQ(h, block_hash(fp(), BlockHash{}, t));
    seen.insert(h);
  }
  EXPECT_EQ(seen.size(), 10000u);
}

TEST(ModelFingerprint, ChangesWithEveryInput) {
  ModelFingerprint base = fp();
  std::vector<ModelFingerprint> others = {
      model_fingerprint("qwen3-0.6b weights v2", "BF16", kLayout),
      model_fingerprint("qwen3-0.6b weights", "F16", kLayout),
      model_fingerprint("qwen3-0.6b weights", "BF16", kLayout, kKvFormatVersion + 1),
  };
  auto vary = [&](auto mutate) {
    KvLayout l = kLayout;
    mutate(l);
    others.push_back(model_fingerprint("qwen3-0.6b weights", "BF16", l));
  };
  vary([](KvLayout& l) { l.num_layers++; });
  vary([](KvLayout& l) { l.num_kv_heads++; });
  vary([](KvLayout& l) { l.head_dim++; });
  vary([](KvLayout& l) { l.block_size = 32; });
  vary([](KvLayout& l) { l.kv_dtype = DType::kF16; });
  std::unordered_set<ModelFingerprint, Hash128Hasher> all{base};
  for (const auto& o : others) {
    EXPECT_NE(o, base);
    all.insert(o);
  }
  EXPECT_EQ(all.size(), others.size() + 1);
}

TEST(ModelFingerprint, ABlockOfAnotherModelNeverMatches) {
  auto tokens = iota_tokens(32);
  KvLayout other_layout = kLayout;
  other_layout.num_kv_heads = 4;
  auto mine = hash_blocks(fp(), tokens, 16);
  auto other_weights = hash_blocks(model_fingerprint("llama weights", "BF16", kLayout), tokens, 16);
  auto other_layout_hashes = hash_blocks(model_fingerprint("qwen3-0.6b weights", "BF16", other_layout), tokens, 16);
  for (size_t i = 0; i < mine.size(); i++) {
    EXPECT_NE(mine[i], other_weights[i]);
    EXPECT_NE(mine[i], other_layout_hashes[i]);
  }
}

TEST(Hash128, HexRoundTrips) {
  Hash128 h = fp();
  EXPECT_EQ(h.hex().size(), 32u);
  auto parsed = Hash128::parse_hex(h.hex());
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(*parsed, h);
  EXPECT_FALSE(Hash128::parse_hex("xyz").ok());
  EXPECT_FALSE(Hash128::parse_hex(std::string(32, 'g')).ok());
}

void write_safetensors(const std::string& path, const std::string& header, size_t data_bytes) {
  std::string bytes(8, '\0');
  uint64_t n = header.size();
  std::memcpy(bytes.data(), &n, 8);
  bytes += header;
  bytes.append(data_bytes, '\0');
  ASSERT_TRUE(env::Env::posix()->write_file_atomic(path, bytes).ok());
}

TEST(WeightsIdentity, CoversHeadersAndSizesOfEverySafetensorsFile) {
  char tmpl[] = "/tmp/keel_weights_id_XXXXXX";
  std::string dir = mkdtemp(tmpl);
  char empty_tmpl[] = "/tmp/keel_weights_id_XXXXXX";
  std::string empty = mkdtemp(empty_tmpl);
  env::Env* env = env::Env::posix();
  write_safetensors(dir + "/model.safetensors", R"({"w":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}})", 4);
  auto a = weights_identity(env, dir);
  ASSERT_TRUE(a.ok()) << a.status().message();
  write_safetensors(dir + "/model.safetensors", R"({"w":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}})", 8);
  auto b = weights_identity(env, dir);
  ASSERT_TRUE(b.ok());
  EXPECT_NE(*a, *b);  // same header, other size
  write_safetensors(dir + "/model.safetensors", R"({"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})", 8);
  auto c = weights_identity(env, dir);
  ASSERT_TRUE(c.ok());
  EXPECT_NE(*b, *c);
  write_safetensors(dir + "/model.safetensors", "{}", 100);
  std::string bad(8, '\xff');
  ASSERT_TRUE(env->write_file_atomic(dir + "/model.safetensors", bad).ok());
  EXPECT_EQ(weights_identity(env, dir).status().code(), Code::kCorruption);
  EXPECT_EQ(weights_identity(env, empty).status().code(), Code::kNotFound);
  std::filesystem::remove_all(dir);
  std::filesystem::remove_all(empty);
}

// The key is SHA-256 over the documented bytes (docs/FORMAT-SSD.md), truncated to 128 bits; the expected value
// is Python's hashlib.sha256 of fingerprint lo, hi, parent (16 zero bytes), u64 4, i32 1 2 3 4, little-endian.
TEST(BlockHash, IsSha256OfTheDocumentedBytesTruncatedTo128Bits) {
  const std::vector<int32_t> tokens = {1, 2, 3, 4};
  EXPECT_EQ(block_hash(Hash128{1, 2}, BlockHash{}, tokens).hex(), "60ba2fbe62fe55328739e3716ee08578");
  // The salt key: SHA-256 of "keel cache salt", u64 length, the salt.
  EXPECT_EQ(salt_key("tenant-a").hex(), "3b68cc12b8d2e509c904ec4e1db43b9f");
  EXPECT_TRUE(salt_key("").is_zero());
}

TEST(BlockHash, DifferentSaltsShareNoBlockAndNoSaltIsTheZeroParent) {
  const auto tokens = iota_tokens(64);
  const auto plain = hash_blocks(fp(), tokens, 16);
  EXPECT_EQ(hash_blocks(fp(), tokens, 16, salt_key("")), plain);
  const auto a = hash_blocks(fp(), tokens, 16, salt_key("a"));
  const auto b = hash_blocks(fp(), tokens, 16, salt_key("b"));
  EXPECT_EQ(hash_blocks(fp(), tokens, 16, salt_key("a")), a);
  for (size_t i = 0; i < plain.size(); i++) {
    EXPECT_NE(a[i], plain[i]) << i;
    EXPECT_NE(a[i], b[i]) << i;
  }
}

// What a key costs: SHA-256 against XXH3-128 over the same bytes, per 16-token block (the default block size).
// Printed for docs/DECISIONS.md; the bound only catches a pathological build (no timing assertion beyond it).
TEST(BlockHash, CostPerBlockIsMicroseconds) {
  constexpr int kBlocks = 200000;
  const auto tokens = iota_tokens(16 * 64);
  auto t0 = std::chrono::steady_clock::now();
  BlockHash parent;
  for (int i = 0; i < kBlocks; i++) parent = block_hash(fp(), parent, std::span(tokens).subspan((i % 64) * 16, 16));
  const double sha_ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() / kBlocks;
  t0 = std::chrono::steady_clock::now();
  uint64_t sink = 0;
  for (int i = 0; i < kBlocks; i++) {
    unsigned char m[40 + 64];
    std::memcpy(m, &parent, 16);
    std::memcpy(m + 16, &parent, 16);
    const uint64_t n = 16;
    std::memcpy(m + 32, &n, 8);
    std::memcpy(m + 40, tokens.data() + (i % 64) * 16, 64);
    XXH128_hash_t h = XXH3_128bits(m, sizeof(m));
    sink += h.low64;
    parent.lo ^= h.low64;
  }
  const double xxh_ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() / kBlocks;
  std::printf("[ hash     ] per 16-token block: SHA-256 %.0f ns, XXH3-128 %.0f ns (sink %llu)\n", sha_ns, xxh_ns,
              static_cast<unsigned long long>(sink & 1));
  EXPECT_LT(sha_ns, 100000.0);
}

}  // namespace
}  // namespace keel::cache
