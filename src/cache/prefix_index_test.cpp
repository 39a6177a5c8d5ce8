#include "cache/prefix_index.h"

#include <gtest/gtest.h>

#include <random>

namespace keel::cache {
namespace {

BlockHash h(uint64_t i) { return BlockHash{i, ~i}; }

TEST(PrefixIndex, LookupReturnsTheLongestCachedPrefix) {
  PrefixIndex index(8);
  ASSERT_TRUE(index.insert(h(1), 5));
  ASSERT_TRUE(index.insert(h(2), 3));
  ASSERT_TRUE(index.insert(h(4), 7));  // cached, but after a gap
  std::vector<BlockHash> prompt = {h(1), h(2), h(3), h(4)};
  EXPECT_EQ(index.lookup(prompt), (std::vector<int32_t>{5, 3}));
  EXPECT_EQ(index.stats().hit_blocks, 2u);
  EXPECT_EQ(index.stats().miss_blocks, 2u);
  std::vector<BlockHash> cold = {h(9), h(1)};
  EXPECT_TRUE(index.lookup(cold).empty());
}

TEST(PrefixIndex, AHashIsHeldByOneBlockAndABlockHoldsOneHash) {
  PrefixIndex index(4);
  ASSERT_TRUE(index.insert(h(1), 0));
  EXPECT_FALSE(index.insert(h(1), 1));  // computed twice concurrently: the second copy stays uncached
  EXPECT_FALSE(index.insert(h(2), 0));
  EXPECT_EQ(index.find(h(1)), 0);
  EXPECT_EQ(index.hash_of(0), h(1));
  EXPECT_FALSE(index.hash_of(1).has_value());
  EXPECT_EQ(index.num_cached(), 1u);
}

TEST(PrefixIndex, ReleasedBlocksStayCachedAndAreEvictedLeastRecentlyReleasedFirst) {
  PrefixIndex index(8);
  for (int b = 0; b < 4; b++) ASSERT_TRUE(index.insert(h(b), b));
  EXPECT_EQ(index.num_evictable(), 0u);
  EXPECT_FALSE(index.evict_lru().has_value());  // all in use
  EXPECT_TRUE(index.on_released(2));
  EXPECT_TRUE(index.on_released(0));
  EXPECT_TRUE(index.on_released(3));
  EXPECT_FALSE(index.on_released(6));  // never cached: goes back to the pool's free list
  EXPECT_EQ(index.num_evictable(), 3u);
  std::vector<BlockHash> prompt = {h(2)};
  EXPECT_EQ(index.lookup(prompt), (std::vector<int32_t>{2}));  // still cached after release
  auto first = index.evict_lru();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->block, 2);
  EXPECT_EQ(first->hash, h(2));
  EXPECT_FALSE(index.find(h(2)).has_value());
  EXPECT_EQ(index.evict_lru()->block, 0);
  EXPECT_EQ(index.evict_lru()->block, 3);
  EXPECT_FALSE(index.evict_lru().has_value());
  EXPECT_EQ(index.num_cached(), 1u);  // block 1 is still in use
  EXPECT_EQ(index.stats().evictions, 3u);
}

TEST(PrefixIndex, ReusedBlockLeavesTheLruAndReentersAtTheBack) {
  PrefixIndex index(4);
  for (int b = 0; b < 3; b++) {
    ASSERT_TRUE(index.insert(h(b), b));
    ASSERT_TRUE(index.on_released(b));
  }
  index.on_acquired(0);  // a new request reuses block 0
  EXPECT_FALSE(index.is_evictable(0));
  EXPECT_EQ(index.num_evictable(), 2u);
  index.on_released(0);  // released again: now the most recent
  EXPECT_EQ(index.evict_lru()->block, 1);
  EXPECT_EQ(index.evict_lru()->block, 2);
  EXPECT_EQ(index.evict_lru()->block, 0);
}

TEST(PrefixIndex, ErasedBlockIsForgotten) {
  PrefixIndex index(4);
  ASSERT_TRUE(index.insert(h(1), 1));
  index.on_released(1);
  index.erase_block(1);
  EXPECT_FALSE(index.find(h(1)).has_value());
  EXPECT_EQ(index.num_evictable(), 0u);
  EXPECT_TRUE(index.insert(h(5), 1));
}

TEST(PrefixIndex, RandomWorkloadMatchesAReferenceModel) {
  const int n = 32;
  PrefixIndex index(n);
  std::vector<std::optional<BlockHash>> held(n);
  std::vector<bool> evictable(n, false);
  std::vector<int32_t> order;  // reference LRU, least recent first
  std::mt19937 rng(7);
  for (int step = 0; step < 20000; step++) {
    int32_t b = static_cast<int32_t>(rng() % n);
    switch (rng() % 4) {
      case 0:
        if (!held[b] && index.insert(h(step), b)) held[b] = h(step);
        break;
      case 1:
        if (index.on_released(b)) {
          std::erase(order, b);
          order.push_back(b);
          evictable[b] = true;
        }
        break;
      case 2:
        index.on_acquired(b);
        std::erase(order, b);
        evictable[b] = false;
        break;
      case 3: {
        auto e = index.evict_lru();
        ASSERT_EQ(e.has_value(), !order.empty());
        if (e) {
          ASSERT_EQ(e->block, order.front());
          ASSERT_EQ(e->hash, *held[e->block]);
          held[e->block].reset();
          evictable[e->block] = false;
          order.erase(order.begin());
        }
        break;
      }
    }
    ASSERT_EQ(index.num_evictable(), order.size());
  }
}

}  // namespace
}  // namespace keel::cache
