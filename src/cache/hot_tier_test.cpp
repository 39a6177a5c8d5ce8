#include "cache/hot_tier.h"

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <random>

namespace keel::cache {
namespace {

BlockHash h(uint64_t i) { return BlockHash{i * 7919 + 1, i}; }

// Counts what the tier takes from the host, to prove it reserves once and never more than the cap.
class CountingAllocator final : public HostAllocator {
 public:
  Result<void*> allocate(size_t bytes) override {
    calls++;
    outstanding += bytes;
    peak = std::max(peak, outstanding);
    return HostAllocator::aligned()->allocate(bytes);
  }
  void deallocate(void* p, size_t bytes) override {
    outstanding -= bytes;
    HostAllocator::aligned()->deallocate(p, bytes);
  }
  int calls = 0;
  uint64_t outstanding = 0;
  uint64_t peak = 0;
};

std::vector<uint8_t> block_bytes_for(uint64_t i, size_t n) {
  std::vector<uint8_t> b(n);
  for (size_t k = 0; k < n; k++) b[k] = static_cast<uint8_t>(i * 31 + k);
  return b;
}

TEST(HotTier, ReservesFloorOfCapOverBlockBytesOnce) {
  CountingAllocator alloc;
  {
    auto tier = HotTier::create(1000, 64, &alloc);
    ASSERT_TRUE(tier.ok());
    EXPECT_EQ((*tier)->capacity_blocks(), 15u);
    EXPECT_EQ((*tier)->reserved_bytes(), 960u);
    EXPECT_EQ(alloc.calls, 1);
    EXPECT_LE(alloc.peak, 1000u);
  }
  EXPECT_EQ(alloc.outstanding, 0u);
}

TEST(HotTier, CapSmallerThanOneBlockIsRefused) {
  auto tier = HotTier::create(63, 64);
  ASSERT_FALSE(tier.ok());
  EXPECT_EQ(tier.status().code(), Code::kInvalidArgument);
  EXPECT_NE(tier.status().message().find("--hot-cache-max-size"), std::string::npos);
}

TEST(HotTier, GetReturnsTheBytesPut) {
  auto tier = HotTier::create(64 * 4, 64);
  ASSERT_TRUE(tier.ok());
  auto bytes = block_bytes_for(1, 64);
  (*tier)->put_copy(h(1), bytes);
  const uint8_t* got = (*tier)->get(h(1));
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(std::memcmp(got, bytes.data(), 64), 0);
  EXPECT_EQ((*tier)->get(h(2)), nullptr);
  EXPECT_EQ((*tier)->stats().hits, 1u);
  EXPECT_EQ((*tier)->stats().misses, 1u);
}

TEST(HotTier, EvictsLeastRecentlyUsedAndLeavesItsBytesForTheCaller) {
  auto tier = HotTier::create(64 * 3, 64);
  ASSERT_TRUE(tier.ok());
  HotTier& t = **tier;
  for (int i = 0; i < 3; i++) t.put_copy(h(i), block_bytes_for(i, 64));
  ASSERT_NE(t.get(h(0)), nullptr);  // 0 becomes most recent; 1 is now the oldest
  std::optional<BlockHash> evicted;
  uint8_t* slot = t.put(h(3), &evicted);
  ASSERT_TRUE(evicted.has_value());
  EXPECT_EQ(*evicted, h(1));
  EXPECT_EQ(std::memcmp(slot, block_bytes_for(1, 64).data(), 64), 0);  // still readable before overwrite
  EXPECT_FALSE(t.contains(h(1)));
  EXPECT_TRUE(t.contains(h(0)));
  EXPECT_TRUE(t.contains(h(2)));
  EXPECT_TRUE(t.contains(h(3)));
  t.put(h(4), &evicted);
  EXPECT_EQ(*evicted, h(2));
}

TEST(HotTier, PuttingAPresentHashReusesItsSlot) {
  auto tier = HotTier::create(64 * 2, 64);
  ASSERT_TRUE(tier.ok());
  std::optional<BlockHash> evicted;
  uint8_t* a = (*tier)->put(h(1), &evicted);
  uint8_t* b = (*tier)->put(h(1), &evicted);
  EXPECT_EQ(a, b);
  EXPECT_FALSE(evicted.has_value());
  EXPECT_EQ((*tier)->num_blocks(), 1u);
}

TEST(HotTier, CountPrefixStopsAtFirstMiss) {
  auto tier = HotTier::create(64 * 8, 64);
  ASSERT_TRUE(tier.ok());
  (*tier)->put(h(1));
  (*tier)->put(h(2));
  (*tier)->put(h(4));
  std::vector<BlockHash> prompt = {h(1), h(2), h(3), h(4)};
  EXPECT_EQ((*tier)->count_prefix(prompt), 2u);
}

TEST(HotTier, CapIsNeverExceededUnderARandomWorkloadOfManyTimesItsSize) {
  CountingAllocator alloc;
  const size_t block = 256;
  const uint64_t cap = 100 * block + 77;  // not a multiple: the remainder must stay unused
  auto tier = HotTier::create(cap, block, &alloc);
  ASSERT_TRUE(tier.ok());
  HotTier& t = **tier;
  std::mt19937_64 rng(42);
  uint64_t written = 0;
  for (int step = 0; step < 50000; step++) {
    uint64_t id = rng() % 1000;
    if (rng() % 3 == 0) {
      const uint8_t* got = t.get(h(id));
      if (got != nullptr) {
        ASSERT_EQ(std::memcmp(got, block_bytes_for(id, block).data(), block), 0) << id;
      }
    } else if (rng() % 10 == 0) {
      t.erase(h(id));
    } else {
      t.put_copy(h(id), block_bytes_for(id, block));
      written += block;
    }
    ASSERT_LE(t.used_bytes(), cap);
    ASSERT_LE(t.num_blocks(), t.capacity_blocks());
  }
  EXPECT_GT(written, 50 * cap);
  EXPECT_EQ(alloc.calls, 1);
  EXPECT_LE(alloc.peak, cap);
  EXPECT_EQ(t.num_blocks(), t.capacity_blocks());
}

}  // namespace
}  // namespace keel::cache
