// Vocab-parallel greedy: each rank's row maxima over its slice, exchanged as (value, id) pairs and merged, give
// exactly the argmax of the whole rows, ties included.
#include "model/vocab_parallel.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/ops.h"

namespace keel::model {
namespace {

// What the ranks of a group compute between them: each one's argmax_rows over its slice of `logits` [rows,
// vocab] (cut into `ranks` equal slices), packed, concatenated in rank order (the all-gather), merged.
std::vector<int32_t> vocab_parallel_argmax(const std::vector<float>& logits, int rows, int vocab, int ranks,
                                           int32_t id_base = 0) {
  auto backend = backend::make_cpu_backend();
  const int slice = vocab / ranks;
  std::vector<float> gathered(2 * static_cast<size_t>(rows) * ranks);
  for (int k = 0; k < ranks; k++) {
    std::vector<float> part(static_cast<size_t>(rows) * slice);
    for (int r = 0; r < rows; r++)
      std::copy_n(logits.data() + static_cast<size_t>(r) * vocab + k * slice, slice, part.data() + r * slice);
    backend::Tensor t = *backend->alloc(DType::kF32, rows, slice);
    backend->copy_from_host(part.data(), t);
    std::vector<int32_t> ids(rows);
    std::vector<float> values(rows);
    backend->argmax_rows(t, ids.data(), values.data());
    pack_row_maxima(values.data(), ids.data(), id_base + k * slice, rows, gathered.data() + 2 * k * rows);
  }
  std::vector<int32_t> out(rows, -1);
  merge_row_maxima(gathered.data(), ranks, rows, out.data());
  return out;
}

int32_t whole_argmax(const std::vector<float>& logits, int row, int vocab) {
  const float* l = logits.data() + static_cast<size_t>(row) * vocab;
  return static_cast<int32_t>(std::max_element(l, l + vocab) - l);
}

TEST(VocabParallelGreedy, ArgmaxRowsAlsoGivesEachRowsMaximum) {
  auto backend = backend::make_cpu_backend();
  const std::vector<float> logits = {1, 7, 7, -2, /**/ -INFINITY, -INFINITY, -5, -INFINITY};
  backend::Tensor t = *backend->alloc(DType::kF32, 2, 4);
  backend->copy_from_host(logits.data(), t);
  std::vector<int32_t> ids(2);
  std::vector<float> values(2);
  backend->argmax_rows(t, ids.data(), values.data());
  EXPECT_EQ(ids, (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(values, (std::vector<float>{7, -5}));
}

TEST(VocabParallelGreedy, EqualMaximaOnTwoRanksGoToTheLowerId) {
  const int rows = 5, vocab = 32;
  std::vector<float> logits(rows * vocab);
  for (int i = 0; i < rows * vocab; i++) logits[i] = std::sin(0.37f * i);  // below 1 everywhere
  auto at = [&](int r, int v) -> float& { return logits[r * vocab + v]; };
  at(0, 9) = at(0, 17) = 3.5f;                // of 4 ranks (8 ids each): ranks 1 and 2
  at(1, 30) = at(1, 2) = 2.0f;                // ranks 3 and 0
  at(2, 12) = at(2, 13) = at(2, 25) = 1.25f;  // twice inside rank 1, once in rank 3
  for (int v = 0; v < vocab; v++) at(3, v) = -0.5f;  // all equal: id 0
  for (int v = 0; v < vocab; v++) at(4, v) = v == vocab - 1 ? 0.0f : -INFINITY;  // masked but the very last
  for (int ranks : {1, 2, 4, 8}) {
    const std::vector<int32_t> got = vocab_parallel_argmax(logits, rows, vocab, ranks);
    for (int r = 0; r < rows; r++) EXPECT_EQ(got[r], whole_argmax(logits, r, vocab)) << ranks << " ranks, row " << r;
    EXPECT_EQ(got[0], 9) << ranks;
    EXPECT_EQ(got[1], 2) << ranks;
    EXPECT_EQ(got[2], 12) << ranks;
    EXPECT_EQ(got[3], 0) << ranks;
    EXPECT_EQ(got[4], vocab - 1) << ranks;
  }
}

TEST(VocabParallelGreedy, IdsTravelBitwiseSoEveryIdIsExact) {
  // 2^24 + 1 and up have no exact float32: a float conversion would merge neighbours, the bitwise pair does not.
  const int rows = 2, vocab = 8;
  std::vector<float> logits(rows * vocab, 0.0f);
  logits[5] = 1.0f;
  logits[vocab + 2] = 1.0f;
  const int32_t base = (1 << 24) + 1;
  const std::vector<int32_t> got = vocab_parallel_argmax(logits, rows, vocab, 2, base);
  EXPECT_EQ(got, (std::vector<int32_t>{base + 5, base + 2}));
}

}  // namespace
}  // namespace keel::model
