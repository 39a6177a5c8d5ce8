#include "model/pipeline.h"

#include <gtest/gtest.h>

namespace keel::model {
namespace {

// Sequence A: 5 rows of a 12-token sequence (7 cached before); sequence B: a new 3-token prompt. Logits for
// A's last row and all of B's.
Batch two_sequences() {
  Batch b;
  for (int i = 0; i < 8; i++) b.tokens.push_back(100 + i);
  b.meta.positions = {7, 8, 9, 10, 11, 0, 1, 2};
  b.meta.slot_mapping = {7, 8, 9, 10, 11, 16, 17, 18};
  b.meta.seqs.push_back(backend::SeqSlice{0, 5, 12, {0}});
  b.meta.seqs.push_back(backend::SeqSlice{5, 3, 3, {1}});
  b.logit_rows = {4, 5, 6, 7};
  return b;
}

TEST(MicroBatches, CutsInsideASequenceShortenTheEarlierPiece) {
  const auto mbs = split_micro_batches(two_sequences(), 3);  // rows [0,2) [2,5) [5,8)
  ASSERT_EQ(mbs.size(), 3u);
  EXPECT_EQ(mbs[0].row0, 0);
  EXPECT_EQ(mbs[0].batch.tokens, (std::vector<int32_t>{100, 101}));
  EXPECT_EQ(mbs[0].batch.meta.positions, (std::vector<int32_t>{7, 8}));
  ASSERT_EQ(mbs[0].batch.meta.seqs.size(), 1u);
  // A's first two rows: after them A's KV holds 9 tokens; rope still scales by the step's 12.
  EXPECT_EQ(mbs[0].batch.meta.seqs[0].q_start, 0);
  EXPECT_EQ(mbs[0].batch.meta.seqs[0].q_len, 2);
  EXPECT_EQ(mbs[0].batch.meta.seqs[0].kv_len, 9);
  EXPECT_EQ(mbs[0].rope_len, (std::vector<int32_t>{12}));
  EXPECT_TRUE(mbs[0].batch.logit_rows.empty());

  EXPECT_EQ(mbs[1].row0, 2);
  EXPECT_EQ(mbs[1].batch.meta.slot_mapping, (std::vector<int32_t>{9, 10, 11}));
  ASSERT_EQ(mbs[1].batch.meta.seqs.size(), 1u);
  EXPECT_EQ(mbs[1].batch.meta.seqs[0].q_len, 3);
  EXPECT_EQ(mbs[1].batch.meta.seqs[0].kv_len, 12);
  EXPECT_EQ(mbs[1].batch.logit_rows, (std::vector<int32_t>{2}));
  EXPECT_EQ(mbs[1].logit_index, (std::vector<int32_t>{0}));

  ASSERT_EQ(mbs[2].batch.meta.seqs.size(), 1u);
  EXPECT_EQ(mbs[2].batch.meta.seqs[0].q_start, 0);
  EXPECT_EQ(mbs[2].batch.meta.seqs[0].q_len, 3);
  EXPECT_EQ(mbs[2].batch.meta.seqs[0].kv_len, 3);
  EXPECT_EQ(mbs[2].batch.meta.seqs[0].block_table, (std::vector<int32_t>{1}));
  EXPECT_EQ(mbs[2].batch.logit_rows, (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(mbs[2].logit_index, (std::vector<int32_t>{1, 2, 3}));
}

TEST(MicroBatches, AMicroBatchMaySpanSequences) {
  const auto mbs = split_micro_batches(two_sequences(), 2);  // rows [0,4) [4,8)
  ASSERT_EQ(mbs.size(), 2u);
  ASSERT_EQ(mbs[1].batch.meta.seqs.size(), 2u);
  EXPECT_EQ(mbs[1].batch.meta.seqs[0].q_start, 0);
  EXPECT_EQ(mbs[1].batch.meta.seqs[0].q_len, 1);
  EXPECT_EQ(mbs[1].batch.meta.seqs[0].kv_len, 12);
  EXPECT_EQ(mbs[1].batch.meta.seqs[1].q_start, 1);
  EXPECT_EQ(mbs[1].batch.meta.seqs[1].q_len, 3);
  EXPECT_EQ(mbs[1].batch.logit_rows, (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(mbs[1].logit_index, (std::vector<int32_t>{0, 1, 2, 3}));
}

TEST(MicroBatches, NeverMoreThanOnePerToken) {
  EXPECT_EQ(split_micro_batches(two_sequences(), 20).size(), 8u);
  EXPECT_EQ(split_micro_batches(two_sequences(), 0).size(), 1u);
  const auto one = split_micro_batches(two_sequences(), 1);
  EXPECT_EQ(one[0].batch.tokens, two_sequences().tokens);
  EXPECT_EQ(one[0].logit_index, (std::vector<int32_t>{0, 1, 2, 3}));
}

}  // namespace
}  // namespace keel::model
