// Prefix caching in the scheduler's bookkeeping: what is reused, what is evicted first, and that every
// reference taken is given back.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "engine/scheduler.h"

namespace keel::engine {

namespace {

const cache::ModelFingerprint kModelA{1, 2};
const cache::ModelFingerprint kModelB{3, 4};

std::vector<int32_t> tokens(int n, int salt) {
  std::vector<int32_t> t;
  for (int i = 0; i < n; i++) t.push_back(salt * 1000 + i);
  return t;
}

std::unique_ptr<Sequence> seq(uint64_t id, std::vector<int32_t> prompt) {
  return std::make_unique<Sequence>(id, std::move(prompt), /*block_size=*/4);
}

void run(Scheduler& s, const StepPlan& plan) {
  s.advance(plan);
  for (auto& c : plan.chunks)
    if (c.samples()) c.seq->tokens.push_back(7);
}

// Runs until `id` has sampled once, then finishes it.
void prefill_and_finish(Scheduler& s, uint64_t id) {
  while (true) {
    StepPlan p = s.schedule();
    bool sampled = false;
    for (auto& c : p.chunks) sampled |= c.seq->id == id && c.samples();
    run(s, p);
    if (sampled) break;
  }
  ASSERT_TRUE(s.finish(id));
}

// Idle: no block referenced, every block free or cached-and-evictable.
void expect_balanced(const Scheduler& s) {
  EXPECT_EQ(s.pool().num_used(), 0);
  EXPECT_EQ(s.pool().num_free() + s.pool().num_kept(), s.pool().num_blocks());
  ASSERT_NE(s.prefix_index(), nullptr);
  EXPECT_EQ(static_cast<int>(s.prefix_index()->num_evictable()), s.pool().num_kept());
  EXPECT_EQ(s.prefix_index()->num_cached(), s.prefix_index()->num_evictable());
}

}  // namespace

TEST(PrefixCache, SecondRequestReusesFullBlocksButRecomputesItsLastToken) {
  Scheduler s(/*blocks=*/16, /*block_size=*/4, 8, 100, kModelA);
  s.add(seq(1, tokens(12, 1)));
  prefill_and_finish(s, 1);
  EXPECT_EQ(s.pool().num_kept(), 3);  // 12 computed tokens = 3 full blocks

  // The same 12 tokens: 3 full blocks cached, but the last token must run for its logits.
  s.add(seq(2, tokens(12, 1)));
  StepPlan p = s.schedule();
  ASSERT_EQ(p.chunks.size(), 1u);
  EXPECT_EQ(p.chunks[0].begin, 8);
  EXPECT_EQ(p.chunks[0].end, 12);
  EXPECT_EQ(p.chunks[0].seq->cached_tokens, 8);
  EXPECT_EQ(p.chunks[0].seq->table.blocks().size(), 3u);
  run(s, p);
  ASSERT_TRUE(s.finish(2));

  // One token more: all 3 blocks are reused.
  std::vector<int32_t> longer = tokens(12, 1);
  longer.push_back(99);
  s.add(seq(3, longer));
  p = s.schedule();
  ASSERT_EQ(p.chunks.size(), 1u);
  EXPECT_EQ(p.chunks[0].begin, 12);
  EXPECT_EQ(p.chunks[0].seq->cached_tokens, 12);
  run(s, p);
  ASSERT_TRUE(s.finish(3));
  EXPECT_EQ(s.prefix_stats().hit_blocks, 5u);
  expect_balanced(s);
}

TEST(PrefixCache, RunningSequencesShareCachedBlocks) {
  Scheduler s(16, 4, 8, 100, kModelA);
  s.add(seq(1, tokens(9, 1)));
  run(s, s.schedule());  // seq 1 running, its 2 full blocks indexed
  s.add(seq(2, tokens(9, 1)));
  StepPlan p = s.schedule();
  ASSERT_EQ(p.chunks.size(), 2u);
  Sequence* two = p.chunks[1].seq;
  EXPECT_EQ(two->cached_tokens, 8);
  Sequence* one = s.find(1);
  EXPECT_EQ(one->table.blocks()[0], two->table.blocks()[0]);
  EXPECT_EQ(s.pool().refcount(one->table.blocks()[0]), 2);
  EXPECT_NE(one->table.blocks()[2], two->table.blocks()[2]);  // each writes its own tail
  run(s, p);
  ASSERT_TRUE(s.finish(1));
  ASSERT_TRUE(s.finish(2));
  expect_balanced(s);
}

TEST(PrefixCache, EvictsTheLeastRecentlyReleasedTailFirstWhenThePoolRunsShort) {
  Scheduler s(/*blocks=*/6, 4, 8, 100, kModelA);
  s.add(seq(1, tokens(8, 1)));
  prefill_and_finish(s, 1);  // A0, A1 cached
  s.add(seq(2, tokens(8, 2)));
  prefill_and_finish(s, 2);  // B0, B1 cached
  EXPECT_EQ(s.pool().num_kept(), 4);
  EXPECT_EQ(s.pool().num_free(), 2);
  // Needs 3 blocks: 2 free and one evicted, which must be A's last block.
  s.add(seq(3, tokens(12, 3)));
  run(s, s.schedule());
  EXPECT_EQ(s.prefix_stats().evictions, 1u);
  const auto a = cache::hash_blocks(kModelA, tokens(8, 1), 4);
  const auto b = cache::hash_blocks(kModelA, tokens(8, 2), 4);
  const cache::PrefixIndex& index = *s.prefix_index();
  EXPECT_TRUE(index.find(a[0]).has_value());
  EXPECT_FALSE(index.find(a[1]).has_value());
  EXPECT_TRUE(index.find(b[0]).has_value());
  EXPECT_TRUE(index.find(b[1]).has_value());
  ASSERT_TRUE(s.finish(3));
  // A's prompt again: only its first block is left.
  std::vector<int32_t> again = tokens(8, 1);
  again.push_back(5);
  s.add(seq(4, again));
  StepPlan p = s.schedule();
  EXPECT_EQ(p.chunks[0].seq->cached_tokens, 4);
  run(s, p);
  ASSERT_TRUE(s.finish(4));
  expect_balanced(s);
}

TEST(PrefixCache, ACachedHitIsNotEvictedToMakeRoomForItsOwnSequence) {
  Scheduler s(/*blocks=*/4, 4, 8, 100, kModelA);
  s.add(seq(1, tokens(12, 1)));
  prefill_and_finish(s, 1);  // 3 cached, 1 free
  std::vector<int32_t> p2 = tokens(12, 1);
  for (int i = 0; i < 4; i++) p2.push_back(50 + i);
  s.add(seq(2, p2));  // reuses 3, needs 1 more: the free one
  StepPlan p = s.schedule();
  ASSERT_EQ(p.chunks.size(), 1u);
  EXPECT_EQ(p.chunks[0].seq->cached_tokens, 12);
  EXPECT_EQ(s.prefix_stats().evictions, 0u);
  run(s, p);
  ASSERT_TRUE(s.finish(2));
  expect_balanced(s);
}

TEST(PrefixCache, BlocksOfAnotherModelNeverMatch) {
  Scheduler s(16, 4, 8, 100, kModelA);
  s.add(seq(1, tokens(12, 1)));
  prefill_and_finish(s, 1);
  const cache::PrefixIndex& index = *s.prefix_index();
  for (const auto& h : cache::hash_blocks(kModelA, tokens(12, 1), 4)) EXPECT_TRUE(index.find(h).has_value());
  for (const auto& h : cache::hash_blocks(kModelB, tokens(12, 1), 4)) EXPECT_FALSE(index.find(h).has_value());
  // A scheduler of model B given the same tokens finds nothing of model A's (separate pools, same hashes
  // would be the only way to match).
  Scheduler other(16, 4, 8, 100, kModelB);
  other.add(seq(2, tokens(13, 1)));
  StepPlan p = other.schedule();
  EXPECT_EQ(p.chunks[0].begin, 0);
}

TEST(PrefixCache, WithoutAFingerprintBlocksAreFreedAtOnce) {
  Scheduler s(16, 4, 8, 100);
  s.add(seq(1, tokens(12, 1)));
  prefill_and_finish(s, 1);
  EXPECT_EQ(s.prefix_index(), nullptr);
  EXPECT_EQ(s.pool().num_kept(), 0);
  EXPECT_EQ(s.pool().num_free(), 16);
  s.add(seq(2, tokens(13, 1)));
  EXPECT_EQ(s.schedule().chunks[0].begin, 0);
}

TEST(PrefixCache, RefcountsBalanceUnderSharingPreemptionAndEviction) {
  // Small pool, shared prefixes, random lengths and finishes: every reference comes back.
  std::mt19937 rng(42);
  Scheduler s(/*blocks=*/16, 4, /*max_num_seqs=*/6, /*max_num_batched_tokens=*/16, kModelA);
  uint64_t next = 1;
  std::vector<uint64_t> live;
  for (int step = 0; step < 600; step++) {
    if (live.size() < 8 && rng() % 3 == 0) {
      std::vector<int32_t> p = tokens(4 * static_cast<int>(rng() % 4), static_cast<int>(rng() % 3));
      const int extra = 1 + static_cast<int>(rng() % 9);
      for (int i = 0; i < extra; i++) p.push_back(static_cast<int32_t>(rng() % 5));
      s.add(seq(next, p));
      live.push_back(next++);
    }
    run(s, s.schedule());
    for (size_t i = 0; i < live.size();) {
      Sequence* q = s.find(live[i]);
      if (q->generated() >= 20 || rng() % 60 == 0) {
        ASSERT_TRUE(s.finish(live[i]));
        live.erase(live.begin() + static_cast<long>(i));
      } else {
        i++;
      }
    }
    // Referenced blocks are never also kept or free.
    EXPECT_EQ(s.pool().num_used() + s.pool().num_free() + s.pool().num_kept(), s.pool().num_blocks());
    EXPECT_EQ(static_cast<int>(s.prefix_index()->num_evictable()), s.pool().num_kept());
  }
  for (uint64_t id : live) ASSERT_TRUE(s.finish(id));
  EXPECT_GT(s.prefix_stats().hit_blocks, 0u);
  EXPECT_GT(s.prefix_stats().evictions, 0u);
  EXPECT_GT(s.preemptions(), 0u);
  expect_balanced(s);
}

namespace {

// Device memory for the scheduler's copies: each block holds the hash of the tokens whose KV it has, written
// by `compute` as a forward pass would.
struct FakeDevice : KvBlockCopier {
  static constexpr size_t kBlockBytes = sizeof(cache::BlockHash);
  std::vector<cache::BlockHash> blocks;
  explicit FakeDevice(int n) : blocks(n) {}
  void to_host(int32_t block, void* dst) override { std::memcpy(dst, &blocks[block], kBlockBytes); }
  void from_host(const void* src, int32_t block) override { std::memcpy(&blocks[block], src, kBlockBytes); }

  void compute(const StepPlan& plan) {
    for (const Chunk& c : plan.chunks) {
      const auto hashes = cache::hash_blocks(kModelA, std::span(c.seq->tokens).first(c.end), 4);
      for (int i = c.begin / 4; i < static_cast<int>(hashes.size()); i++) blocks[c.seq->table.blocks()[i]] = hashes[i];
    }
  }
  // Every full block a sequence starts a step with holds its own tokens' KV.
  void expect_consistent(const StepPlan& plan) const {
    for (const Chunk& c : plan.chunks) {
      const auto hashes = cache::hash_blocks(kModelA, std::span(c.seq->tokens).first(c.begin), 4);
      for (size_t i = 0; i < hashes.size(); i++)
        EXPECT_EQ(blocks[c.seq->table.blocks()[i]], hashes[i]) << "sequence " << c.seq->id << " block " << i;
    }
  }
};

void step(Scheduler& s, FakeDevice& d) {
  StepPlan p = s.schedule();
  d.expect_consistent(p);
  d.compute(p);
  run(s, p);
}

void prefill_and_finish(Scheduler& s, FakeDevice& d, uint64_t id) {
  while (true) {
    StepPlan p = s.schedule();
    d.expect_consistent(p);
    d.compute(p);
    bool sampled = false;
    for (auto& c : p.chunks) sampled |= c.seq->id == id && c.samples();
    run(s, p);
    if (sampled) break;
  }
  ASSERT_TRUE(s.finish(id));
}

}  // namespace

TEST(PrefixCacheHotTier, EvictedBlocksGoDownAndComeBackUpWithTheirBytes) {
  Scheduler s(/*blocks=*/6, 4, 8, 100, kModelA);
  FakeDevice d(6);
  auto hot = cache::HotTier::create(16 * FakeDevice::kBlockBytes, FakeDevice::kBlockBytes);
  ASSERT_TRUE(hot.ok());
  s.set_hot_tier(hot->get(), &d);
  s.add(seq(1, tokens(12, 1)));
  prefill_and_finish(s, d, 1);  // A0..A2 cached on the device
  s.add(seq(2, tokens(21, 2)));
  prefill_and_finish(s, d, 2);  // needs 6 blocks: all of A's go down
  EXPECT_EQ(s.prefix_stats().hot_stores, 3u);
  EXPECT_EQ((*hot)->num_blocks(), 3u);
  // A's prompt again, one token longer: all 3 blocks come back from the host tier.
  std::vector<int32_t> again = tokens(12, 1);
  again.push_back(3);
  s.add(seq(3, again));
  StepPlan p = s.schedule();
  ASSERT_EQ(p.chunks.size(), 1u);
  EXPECT_EQ(p.chunks[0].begin, 12);
  EXPECT_EQ(p.chunks[0].seq->cached_tokens, 12);
  d.expect_consistent(p);
  d.compute(p);
  run(s, p);
  EXPECT_EQ(s.prefix_stats().hot_hit_blocks, 3u);
  ASSERT_TRUE(s.finish(3));
  expect_balanced(s);
}

TEST(PrefixCacheHotTier, TheHostTierNeverHoldsMoreThanItsCapAndServesOnlyRightBytes) {
  std::mt19937 rng(7);
  Scheduler s(/*blocks=*/12, 4, /*max_num_seqs=*/4, /*max_num_batched_tokens=*/16, kModelA);
  FakeDevice d(12);
  auto hot = cache::HotTier::create(5 * FakeDevice::kBlockBytes, FakeDevice::kBlockBytes);
  ASSERT_TRUE(hot.ok());
  s.set_hot_tier(hot->get(), &d);
  uint64_t next = 1;
  std::vector<uint64_t> live;
  for (int i = 0; i < 400; i++) {
    if (live.size() < 5 && rng() % 2 == 0) {
      std::vector<int32_t> p = tokens(4 * static_cast<int>(rng() % 4), static_cast<int>(rng() % 4));
      const int extra = 1 + static_cast<int>(rng() % 6);
      for (int k = 0; k < extra; k++) p.push_back(static_cast<int32_t>(rng() % 3));
      s.add(seq(next, p));
      live.push_back(next++);
    }
    step(s, d);
    for (size_t k = 0; k < live.size();) {
      if (s.find(live[k])->generated() >= 4) {
        ASSERT_TRUE(s.finish(live[k]));
        live.erase(live.begin() + static_cast<long>(k));
      } else {
        k++;
      }
    }
    ASSERT_LE((*hot)->num_blocks(), 5u);
    ASSERT_LE((*hot)->used_bytes(), (*hot)->max_bytes());
  }
  for (uint64_t id : live) ASSERT_TRUE(s.finish(id));
  EXPECT_GT(s.prefix_stats().hot_hit_blocks, 0u);
  EXPECT_GT((*hot)->stats().evictions, 0u);
  expect_balanced(s);
}

TEST(PrefixCacheHotTier, EvictCachedSendsEveryUnusedBlockDownAndKeepsBlocksInUse) {
  Scheduler s(/*blocks=*/12, 4, 8, 100, kModelA);
  FakeDevice d(12);
  auto hot = cache::HotTier::create(16 * FakeDevice::kBlockBytes, FakeDevice::kBlockBytes);
  ASSERT_TRUE(hot.ok());
  s.set_hot_tier(hot->get(), &d);
  s.add(seq(1, tokens(12, 1)));
  prefill_and_finish(s, d, 1);  // 3 cached blocks nobody uses
  s.add(seq(2, tokens(9, 2)));
  step(s, d);                   // 2 full blocks of a running sequence: in use
  EXPECT_EQ(s.evict_cached(), 3);
  EXPECT_EQ((*hot)->num_blocks(), 3u);
  EXPECT_EQ(s.prefix_index()->num_evictable(), 0u);
  EXPECT_EQ(s.evict_cached(), 0);
  // The evicted prompt comes back whole from the host tier.
  std::vector<int32_t> again = tokens(12, 1);
  again.push_back(3);
  s.add(seq(3, again));
  StepPlan p = s.schedule();
  d.expect_consistent(p);
  EXPECT_EQ(s.prefix_stats().hot_hit_blocks, 3u);
  d.compute(p);
  run(s, p);
  ASSERT_TRUE(s.finish(2));
  ASSERT_TRUE(s.finish(3));
  expect_balanced(s);
}

}  // namespace keel::engine

namespace keel::engine {

// n > 1: the siblings of a prompt wait for the first one's prefill, then share its full blocks by refcount and
// compute only the tokens after them.
TEST(PrefixCache, SiblingsWaitForTheFirstPrefillThenShareItsFullBlocks) {
  Scheduler s(/*blocks=*/32, /*block_size=*/4, 8, 100, kModelA);
  s.add(seq(1, tokens(10, 1)));
  for (uint64_t id = 2; id <= 4; id++) {
    auto sibling = seq(id, tokens(10, 1));
    sibling->prefill_after = 1;
    s.add(std::move(sibling));
  }
  // An unrelated request behind the siblings is not held up by them.
  s.add(seq(5, tokens(6, 2)));
  StepPlan p = s.schedule();
  ASSERT_EQ(p.chunks.size(), 2u);
  EXPECT_EQ(p.chunks[0].seq->id, 1u);
  EXPECT_EQ(p.chunks[0].end - p.chunks[0].begin, 10);
  EXPECT_EQ(p.chunks[1].seq->id, 5u);
  run(s, p);

  p = s.schedule();
  int prompt_computed = 0;
  std::vector<int32_t> first_table = s.find(1)->table.blocks();
  for (const Chunk& c : p.chunks) {
    if (c.seq->id < 2 || c.seq->id > 4) continue;
    // 10 tokens: the 2 full blocks come from the first sibling's prefill, the last 2 tokens are computed.
    EXPECT_EQ(c.begin, 8);
    EXPECT_EQ(c.end, 10);
    EXPECT_EQ(c.seq->cached_tokens, 8);
    EXPECT_EQ(c.seq->table.blocks()[0], first_table[0]);
    EXPECT_EQ(c.seq->table.blocks()[1], first_table[1]);
    prompt_computed += c.end - c.begin;
  }
  EXPECT_EQ(prompt_computed, 3 * 2);  // against 3 * 10 without sharing
  run(s, p);
  for (uint64_t id = 1; id <= 5; id++) ASSERT_TRUE(s.finish(id));
  expect_balanced(s);
}

TEST(PrefixCache, ASiblingWhoseFirstIsGoneIsAdmittedAlone) {
  Scheduler s(/*blocks=*/32, /*block_size=*/4, 8, 100, kModelA);
  s.add(seq(1, tokens(10, 1)));
  auto sibling = seq(2, tokens(10, 1));
  sibling->prefill_after = 1;
  s.add(std::move(sibling));
  ASSERT_TRUE(s.finish(1));  // cancelled before it ran
  StepPlan p = s.schedule();
  ASSERT_EQ(p.chunks.size(), 1u);
  EXPECT_EQ(p.chunks[0].seq->id, 2u);
  EXPECT_EQ(p.chunks[0].begin, 0);
  run(s, p);
  ASSERT_TRUE(s.finish(2));
  expect_balanced(s);
}

}  // namespace keel::engine

namespace keel::engine {

// A prompt-logprobs sequence asks for a logit row per prompt position: its chunks are cut so that a step never
// asks for more rows than the model's logits buffer holds (4 here, as a plan with --max-num-seqs 4 sizes it),
// with a row left for each other running sequence.
TEST(PrefixCache, PromptLogitsChunksFitTheLogitRows) {
  Scheduler s(/*blocks=*/32, /*block_size=*/4, 8, 100, kModelA);
  s.set_max_logit_rows(4);
  s.add(seq(1, tokens(5, 3)));  // decoding by the time the other prefills
  prefill_and_finish(s, 1);
  s.add(seq(2, tokens(5, 3)));
  StepPlan p = s.schedule();
  run(s, p);
  auto logits = seq(3, tokens(14, 4));
  logits->prompt_logits = true;
  logits->reuse_cached = false;
  s.add(std::move(logits));
  int computed = 0;
  for (int step = 0; step < 20 && computed < 14; step++) {
    p = s.schedule();
    int rows = 0;
    for (const Chunk& c : p.chunks) {
      rows += c.samples() ? 1 : 0;
      if (c.seq->prompt_logits) {
        rows += std::max(0, std::min(c.end, c.seq->prompt_len - 1) - c.begin);
        computed = c.end;
      }
    }
    EXPECT_LE(rows, 4) << "step " << step;
    run(s, p);
  }
  EXPECT_EQ(computed, 14);
  EXPECT_EQ(s.find(3)->cached_tokens, 0);
}

}  // namespace keel::engine
