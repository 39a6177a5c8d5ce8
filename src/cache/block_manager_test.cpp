#include "cache/block_manager.h"

#include <gtest/gtest.h>

#include <cstring>

#include "cache/ssd_test_util.h"
#include "env/fault_env.h"

namespace keel::cache {
namespace {

constexpr int kBlockSize = 4;

// Device memory: each block holds the hash of the tokens whose KV it has (what a forward pass would write).
struct FakeDevice : KvBlockCopier {
  static constexpr size_t kBlockBytes = sizeof(BlockHash);
  std::vector<BlockHash> blocks;
  int copies_to_host = 0;
  explicit FakeDevice(int n) : blocks(n) {}
  void to_host(int32_t block, void* dst) override {
    copies_to_host++;
    std::memcpy(dst, &blocks[block], kBlockBytes);
  }
  void from_host(const void* src, int32_t block) override { std::memcpy(&blocks[block], src, kBlockBytes); }
};

SsdTierOptions ssd_options(const std::string& dir, size_t queue_blocks = 64) {
  SsdTierOptions o = testing::tier_options(dir);
  o.max_payload_bytes = FakeDevice::kBlockBytes;
  o.queue_blocks = queue_blocks;
  return o;
}

std::vector<int32_t> tokens(int n, int32_t first) {
  std::vector<int32_t> t(n);
  for (int i = 0; i < n; i++) t[i] = first + i;
  return t;
}

// Admits `seq` whole and "computes" it: its blocks get their hashes, then on_computed.
void compute(BlockManager& m, FakeDevice& d, SequenceBlocks& seq) {
  auto admitted = m.admit(seq, 1 << 20);
  ASSERT_TRUE(admitted.has_value());
  const int len = static_cast<int>(seq.tokens.size());
  const auto hashes = hash_blocks(testing::test_fingerprint(), seq.tokens, kBlockSize);
  for (size_t i = 0; i < hashes.size(); i++) d.blocks[seq.table.blocks()[i]] = hashes[i];
  m.on_computed(seq, len);
}

TEST(BlockManager, WriteThroughQueuesEachFullComputedBlockOnceWithItsBytes) {
  const std::string dir = testing::temp_dir();
  auto ssd = SsdTier::open(env::Env::posix(), ssd_options(dir));
  ASSERT_TRUE(ssd.ok()) << ssd.status().message();
  FakeDevice d(16);
  BlockManager m(16, kBlockSize, testing::test_fingerprint());
  m.set_ssd_tier(ssd->get(), &d, FakeDevice::kBlockBytes, SsdWritePolicy::kThrough);
  SequenceBlocks a(tokens(10, 1), kBlockSize);  // two full blocks and a partial one
  compute(m, d, a);
  EXPECT_EQ(m.stats().ssd_write_through, 2u);
  // The same prefix computed again (another sequence) is not queued twice.
  m.free(a);
  SequenceBlocks b(tokens(13, 1), kBlockSize);  // the same two blocks (cached), then a third
  compute(m, d, b);
  EXPECT_EQ(m.stats().ssd_write_through, 3u);
  (*ssd)->flush();
  const auto hashes = hash_blocks(testing::test_fingerprint(), b.tokens, kBlockSize);
  for (const BlockHash& h : hashes) {
    BlockHash on_disk;
    ASSERT_TRUE((*ssd)->get(h, std::span(reinterpret_cast<uint8_t*>(&on_disk), sizeof(on_disk))));
    EXPECT_EQ(on_disk, h);  // the device block's bytes
  }
  EXPECT_EQ((*ssd)->stats().written, 3u);
}

// Found by the soak: the hottest prefix is written once, then only served from the device; once the capped tier
// evicts its segment, a kill -9 loses it. A device hit the disk no longer holds is queued again, and only then.
TEST(BlockManager, WriteThroughRequeuesADeviceHitTheDiskNoLongerHolds) {
  const std::string dir = testing::temp_dir();
  auto first = SsdTier::open(env::Env::posix(), ssd_options(dir));
  ASSERT_TRUE(first.ok()) << first.status().message();
  FakeDevice d(16);
  BlockManager m(16, kBlockSize, testing::test_fingerprint());
  m.set_ssd_tier(first->get(), &d, FakeDevice::kBlockBytes, SsdWritePolicy::kThrough);
  SequenceBlocks a(tokens(10, 1), kBlockSize);
  compute(m, d, a);
  m.free(a);
  EXPECT_EQ(m.stats().ssd_write_through, 2u);
  // A disk that lacks both blocks (as after its segment was evicted): the device hits are queued again.
  const std::string empty_dir = testing::temp_dir();
  auto empty = SsdTier::open(env::Env::posix(), ssd_options(empty_dir));
  ASSERT_TRUE(empty.ok()) << empty.status().message();
  m.set_ssd_tier(empty->get(), &d, FakeDevice::kBlockBytes, SsdWritePolicy::kThrough);
  SequenceBlocks b(tokens(10, 1), kBlockSize);
  compute(m, d, b);
  m.free(b);
  EXPECT_EQ(m.stats().ssd_write_through, 4u);
  (*empty)->flush();
  for (const BlockHash& h : hash_blocks(testing::test_fingerprint(), b.tokens, kBlockSize)) {
    BlockHash on_disk;
    ASSERT_TRUE((*empty)->get(h, std::span(reinterpret_cast<uint8_t*>(&on_disk), sizeof(on_disk))));
    EXPECT_EQ(on_disk, h);
  }
  // Hits the disk holds are not queued again.
  SequenceBlocks c(tokens(10, 1), kBlockSize);
  compute(m, d, c);
  EXPECT_EQ(m.stats().ssd_write_through, 4u);
}

TEST(BlockManager, WriteBackQueuesNothingUntilEviction) {
  auto ssd = SsdTier::open(env::Env::posix(), ssd_options(testing::temp_dir()));
  ASSERT_TRUE(ssd.ok());
  FakeDevice d(16);
  BlockManager m(16, kBlockSize, testing::test_fingerprint());
  m.set_ssd_tier(ssd->get(), &d, FakeDevice::kBlockBytes, SsdWritePolicy::kBack);
  SequenceBlocks a(tokens(10, 1), kBlockSize);
  compute(m, d, a);
  EXPECT_EQ(m.stats().ssd_stores, 0u);
  m.free(a);
  EXPECT_EQ(m.evict_cached(), 2);
  EXPECT_EQ(m.stats().ssd_stores, 2u);
  EXPECT_EQ(m.stats().ssd_write_through, 0u);
}

// The queue is bounded: a computed block it cannot take is dropped and counted, without a device copy, and
// nothing waits.
TEST(BlockManager, WriteThroughDropsWithACounterWhenTheQueueIsFull) {
  env::FaultEnv env(env::Env::posix());
  auto ssd = SsdTier::open(&env, ssd_options(testing::temp_dir(), /*queue_blocks=*/2));
  ASSERT_TRUE(ssd.ok());
  env.hold_appends();  // the disk stops answering: the writer keeps its batch, the queue fills
  FakeDevice d(32);
  BlockManager m(32, kBlockSize, testing::test_fingerprint());
  m.set_ssd_tier(ssd->get(), &d, FakeDevice::kBlockBytes, SsdWritePolicy::kThrough);
  SequenceBlocks a(tokens(4 * 8, 1), kBlockSize);
  compute(m, d, a);
  const BlockManagerStats s = m.stats();
  // Two slots, both held by the stuck writer: two queued, six dropped.
  EXPECT_EQ(s.ssd_write_through, 2u);
  EXPECT_EQ(s.ssd_write_through_dropped, 6u);
  EXPECT_EQ(d.copies_to_host, static_cast<int>(s.ssd_write_through));
  env.release_appends();
}

// A clean shutdown: blocks the host tier and the device cache hold but the SSD lacks are written.
TEST(BlockManager, PersistWritesWhatTheDiskLacksFromHostAndDevice) {
  const std::string dir = testing::temp_dir();
  auto ssd = SsdTier::open(env::Env::posix(), ssd_options(dir, /*queue_blocks=*/2));
  ASSERT_TRUE(ssd.ok());
  auto hot = HotTier::create(2 * FakeDevice::kBlockBytes, FakeDevice::kBlockBytes);
  ASSERT_TRUE(hot.ok());
  FakeDevice d(8);
  BlockManager m(8, kBlockSize, testing::test_fingerprint());
  m.set_hot_tier(hot->get(), &d);
  m.set_ssd_tier(ssd->get(), &d, FakeDevice::kBlockBytes, SsdWritePolicy::kBack);
  SequenceBlocks a(tokens(4 * 5, 1), kBlockSize);  // 5 full blocks (the last is the capped one: computed too)
  compute(m, d, a);
  m.free(a);
  // Another prompt of 5 blocks takes 3 free ones and evicts 2 down to host RAM; 3 stay cached on the device.
  SequenceBlocks filler(tokens(4 * 5, 1000), kBlockSize);
  ASSERT_TRUE(m.admit(filler, 1 << 20).has_value());
  m.free(filler);  // uncomputed: never indexed, back to the free list
  ASSERT_EQ(m.stats().hot_stores, 2u);
  ASSERT_EQ(m.prefix_index()->num_cached(), 3u);
  EXPECT_EQ(m.persist_to_ssd(), 5);  // through a queue of 2: waits, never drops
  EXPECT_EQ((*ssd)->stats().written, 5u);
  EXPECT_EQ(m.persist_to_ssd(), 0);  // once per hash
  // A restart finds every block.
  ssd->reset();
  auto again = SsdTier::open(env::Env::posix(), ssd_options(dir));
  ASSERT_TRUE(again.ok());
  for (const BlockHash& h : hash_blocks(testing::test_fingerprint(), a.tokens, kBlockSize))
    EXPECT_TRUE((*again)->contains(h));
}

TEST(BlockManager, AppendBeyondWhatIsAvailableIsABugNotASilentFailure) {
  BlockManager m(2, kBlockSize, std::nullopt);
  SequenceBlocks a(tokens(3, 1), kBlockSize);
  ASSERT_TRUE(m.admit(a, 8).has_value());
  EXPECT_FALSE(m.can_append(a, 20));
  EXPECT_DEATH(m.append(a, 20), "invariant broken.*append of 20 tokens needs");
}

}  // namespace
}  // namespace keel::cache
