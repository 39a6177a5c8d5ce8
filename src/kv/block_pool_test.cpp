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

}  // namespace keel::kv
