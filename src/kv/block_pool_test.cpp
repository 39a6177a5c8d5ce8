#include "kv/block_pool.h"

#include <gtest/gtest.h>

namespace keel::kv {

TEST(BlockPool, AllocatesUntilEmptyThenRefusesWithoutTakingAny) {
  BlockPool pool(4, 16);
  auto a = pool.allocate(3);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(pool.num_free(), 1);
  auto b = pool.allocate(2);
  EXPECT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), Code::kResourceExhausted);
  EXPECT_EQ(pool.num_free(), 1);
}

TEST(BlockPool, SharedBlockIsFreedOnlyAtRefcountZero) {
  BlockPool pool(2, 16);
  auto a = pool.allocate(1);
  ASSERT_TRUE(a.ok());
  int32_t blk = (*a)[0];
  ASSERT_TRUE(pool.acquire(blk).ok());
  ASSERT_TRUE(pool.release(blk).ok());
  EXPECT_EQ(pool.num_free(), 1);
  ASSERT_TRUE(pool.release(blk).ok());
  EXPECT_EQ(pool.num_free(), 2);
}

TEST(BlockPool, ReleaseWithoutAcquireIsAnError) {
  BlockPool pool(2, 16);
  Status s = pool.release(0);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::kInternal);
}

TEST(BlockTable, MapsPositionsToSlotsAcrossBlocks) {
  BlockPool pool(8, 4);
  BlockTable t(4);
  ASSERT_TRUE(t.append(pool, 5).ok());  // 2 blocks
  EXPECT_EQ(t.blocks().size(), 2u);
  EXPECT_EQ(t.slot(4), t.blocks()[1] * 4);
  EXPECT_EQ(t.blocks_needed(3), 0);  // 8 tokens fit in 2 blocks
  EXPECT_EQ(t.blocks_needed(4), 1);
  t.release_all(pool);
  EXPECT_EQ(pool.num_free(), 8);
}

TEST(BlockPool, KeptBlockIsNeitherUsedNorFreeUntilRevivedOrReclaimed) {
  BlockPool pool(3, 16);
  auto a = pool.allocate(2);
  ASSERT_TRUE(a.ok());
  const int32_t blk = (*a)[0];
  ASSERT_TRUE(pool.acquire(blk).ok());
  auto first = pool.release_and_keep(blk);
  ASSERT_TRUE(first.ok());
  EXPECT_FALSE(*first);  // still referenced once
  auto last = pool.release_and_keep(blk);
  ASSERT_TRUE(last.ok());
  EXPECT_TRUE(*last);
  EXPECT_TRUE(pool.is_kept(blk));
  EXPECT_EQ(pool.num_kept(), 1);
  EXPECT_EQ(pool.num_free(), 1);
  EXPECT_EQ(pool.num_used(), 1);
  EXPECT_FALSE(pool.acquire(blk).ok());  // a kept block comes back by revive, not acquire
  ASSERT_TRUE(pool.revive(blk).ok());
  EXPECT_EQ(pool.refcount(blk), 1);
  EXPECT_EQ(pool.num_kept(), 0);
  ASSERT_TRUE(*pool.release_and_keep(blk));
  ASSERT_TRUE(pool.reclaim(blk).ok());
  EXPECT_EQ(pool.num_free(), 2);
  EXPECT_FALSE(pool.reclaim(blk).ok());  // free already
  EXPECT_FALSE(pool.revive(blk).ok());
}

TEST(BlockTable, AppendsFullCachedBlocksThenGrowsAfterThem) {
  BlockPool pool(8, 4);
  auto cached = pool.allocate(2);
  ASSERT_TRUE(cached.ok());
  BlockTable t(4);
  ASSERT_TRUE(t.append_full_blocks(*cached).ok());
  EXPECT_EQ(t.num_tokens(), 8);
  ASSERT_TRUE(t.append(pool, 1).ok());
  EXPECT_EQ(t.blocks().size(), 3u);
  EXPECT_EQ(t.slot(8), t.blocks()[2] * 4);
  EXPECT_FALSE(t.append_full_blocks(*cached).ok());  // its last block is partial
  std::vector<int32_t> taken = t.take_blocks();
  EXPECT_EQ(taken.size(), 3u);
  EXPECT_EQ(t.num_tokens(), 0);
  for (int32_t b : taken) ASSERT_TRUE(pool.release(b).ok());
  EXPECT_EQ(pool.num_free(), 8);
}

}  // namespace keel::kv
