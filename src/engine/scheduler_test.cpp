#include "engine/scheduler.h"

#include <gtest/gtest.h>

namespace keel::engine {

namespace {

std::unique_ptr<Sequence> seq(uint64_t id, int prompt_len, int block_size = 4) {
  return std::make_unique<Sequence>(id, std::vector<int32_t>(prompt_len, 1), block_size);
}

// Runs a plan as the engine would: chunks computed, a token appended to each sampling sequence.
void run(Scheduler& s, const StepPlan& plan) {
  s.advance(plan);
  for (auto& c : plan.chunks)
    if (c.samples()) c.seq->tokens.push_back(7);
}

}  // namespace

TEST(Scheduler, ChunkedPrefillRespectsTheTokenBudget) {
  Scheduler s(/*blocks=*/64, /*block_size=*/4, /*max_num_seqs=*/8, /*max_num_batched_tokens=*/10);
  s.add(seq(1, 25));
  StepPlan p = s.schedule();
  ASSERT_EQ(p.chunks.size(), 1u);
  EXPECT_EQ(p.chunks[0].begin, 0);
  EXPECT_EQ(p.chunks[0].end, 10);
  EXPECT_FALSE(p.chunks[0].samples());
  run(s, p);
  p = s.schedule();
  EXPECT_EQ(p.chunks[0].begin, 10);
  EXPECT_EQ(p.chunks[0].end, 20);
  run(s, p);
  p = s.schedule();
  EXPECT_EQ(p.chunks[0].end, 25);
  EXPECT_TRUE(p.chunks[0].samples());
}

TEST(Scheduler, DecodesRunBeforeNewPrefillsAndShareTheBudget) {
  Scheduler s(64, 4, 8, 8);
  s.add(seq(1, 3));
  run(s, s.schedule());  // seq 1 prefilled, sampled
  s.add(seq(2, 20));
  StepPlan p = s.schedule();
  ASSERT_EQ(p.chunks.size(), 2u);
  EXPECT_EQ(p.chunks[0].seq->id, 1u);  // decode first
  EXPECT_EQ(p.chunks[0].end - p.chunks[0].begin, 1);
  EXPECT_EQ(p.chunks[1].seq->id, 2u);
  EXPECT_EQ(p.chunks[1].end - p.chunks[1].begin, 7);  // the rest of the budget
}

TEST(Scheduler, AdmissionIsFifoAndCappedByMaxNumSeqs) {
  Scheduler s(64, 4, /*max_num_seqs=*/2, 100);
  s.add(seq(1, 4));
  s.add(seq(2, 4));
  s.add(seq(3, 4));
  StepPlan p = s.schedule();
  ASSERT_EQ(p.chunks.size(), 2u);
  EXPECT_EQ(p.chunks[0].seq->id, 1u);
  EXPECT_EQ(p.chunks[1].seq->id, 2u);
  EXPECT_EQ(s.num_waiting(), 1);
}

TEST(Scheduler, AWaitingSequenceThatDoesNotFitBlocksLaterOnes) {
  Scheduler s(/*blocks=*/4, 4, 8, 100);
  s.add(seq(1, 12));  // 3 blocks
  run(s, s.schedule());
  s.add(seq(2, 8));   // needs 2 blocks, 1 free
  s.add(seq(3, 2));   // would fit, but must not overtake seq 2
  StepPlan p = s.schedule();
  ASSERT_EQ(p.chunks.size(), 1u);
  EXPECT_EQ(p.chunks[0].seq->id, 1u);
  EXPECT_EQ(s.num_waiting(), 2);
}

TEST(Scheduler, PreemptsTheNewestWhenBlocksRunOutAndRecomputesItLater) {
  Scheduler s(/*blocks=*/4, /*block_size=*/4, 8, 100);
  s.add(seq(1, 8));  // 2 blocks
  s.add(seq(2, 8));  // 2 blocks
  run(s, s.schedule());  // both prefilled and sampled: 9 tokens each, need a third block each
  EXPECT_EQ(s.pool().num_free(), 0);
  StepPlan p = s.schedule();
  ASSERT_EQ(p.preempted.size(), 1u);
  EXPECT_EQ(p.preempted[0], 2u);  // the newest
  ASSERT_EQ(p.chunks.size(), 1u);
  EXPECT_EQ(p.chunks[0].seq->id, 1u);
  EXPECT_EQ(s.num_waiting(), 1);
  Sequence* two = s.find(2);
  ASSERT_NE(two, nullptr);
  EXPECT_EQ(two->num_computed, 0);
  EXPECT_EQ(two->tokens.size(), 9u);  // its sampled token is kept
  run(s, p);
  // Once seq 1 finishes, seq 2 is recomputed from its first token, then samples.
  EXPECT_TRUE(s.finish(1));
  p = s.schedule();
  ASSERT_EQ(p.chunks.size(), 1u);
  EXPECT_EQ(p.chunks[0].seq->id, 2u);
  EXPECT_EQ(p.chunks[0].begin, 0);
  EXPECT_EQ(p.chunks[0].end, 9);
  EXPECT_TRUE(p.chunks[0].samples());
}

TEST(Scheduler, FinishFreesEveryBlock) {
  Scheduler s(16, 4, 8, 100);
  s.add(seq(1, 10));
  s.add(seq(2, 5));
  run(s, s.schedule());
  EXPECT_GT(s.pool().num_used(), 0);
  EXPECT_TRUE(s.finish(1));
  EXPECT_TRUE(s.finish(2));
  EXPECT_FALSE(s.finish(3));
  EXPECT_EQ(s.pool().num_used(), 0);
  EXPECT_TRUE(s.idle());
}

}  // namespace keel::engine
