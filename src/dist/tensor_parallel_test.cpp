// Tensor parallelism on CPU: N ranks as threads, each holding its slice of a golden model, must give the logits
// of the whole model (TP=1) within fp32 rounding, for every family and for more ranks than KV heads.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "backend/ops.h"
#include "dist/parallel_test_util.h"
#include "dist/thread_communicator.h"
#include "engine/engine.h"
#include "model/model.h"

namespace keel::dist {
namespace {

using testing::load;
using testing::options;
using testing::prompt;

Result<std::vector<float>> whole_model_logits(const std::string& name) {
  auto backend = backend::make_cpu_backend();
  KEEL_ASSIGN_OR_RETURN(auto m, load(name, options(nullptr), backend.get()));
  return engine::all_logits(*m, prompt());
}

// Every rank's logits for the prompt, run with `ranks` threads.
Result<std::vector<std::vector<float>>> tensor_parallel_logits(const std::string& name, int ranks) {
  ThreadGroup group(ranks);
  std::vector<std::vector<float>> logits(ranks);
  auto status = group.run([&](Communicator& comm) -> Status {
    auto backend = backend::make_cpu_backend();
    KEEL_ASSIGN_OR_RETURN(auto m, load(name, options(&comm), backend.get()));
    KEEL_ASSIGN_OR_RETURN(logits[comm.rank()], engine::all_logits(*m, prompt()));
    return Status();
  });
  for (auto& s : status) KEEL_RETURN_IF_ERROR(s);
  return logits;
}

double relative_error(const std::vector<float>& got, const std::vector<float>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); i++) {
    const double d = static_cast<double>(got[i]) - want[i];
    num += d * d;
    den += static_cast<double>(want[i]) * want[i];
  }
  return std::sqrt(num / den);
}

struct Case {
  std::string model;
  int ranks;
};

class TensorParallel : public ::testing::TestWithParam<Case> {};

TEST_P(TensorParallel, LogitsMatchTheWholeModel) {
  const Case c = GetParam();
  auto want = whole_model_logits(c.model);
  ASSERT_TRUE(want.ok()) << want.status().message();
  auto got = tensor_parallel_logits(c.model, c.ranks);
  ASSERT_TRUE(got.ok()) << got.status().message();
  ASSERT_EQ((*got)[0].size(), want->size());
  const double err = relative_error((*got)[0], *want);
  std::printf("[tp] %-12s TP=%d logits rel. error %.3g\n", c.model.c_str(), c.ranks, err);
  EXPECT_LE(err, 1e-5);
  // Every rank holds the same gathered logits, so every rank samples the same next token.
  for (int r = 1; r < c.ranks; r++) EXPECT_EQ((*got)[r], (*got)[0]) << "rank " << r;
}

// Three sequences prefilled in one batch, every row a logit row: 15 rows of next-token logits.
model::Batch three_sequences() {
  model::Batch b;
  const int lengths[] = {5, 4, 6};
  for (int s = 0; s < 3; s++) {
    backend::SeqSlice slice;
    slice.q_start = static_cast<int32_t>(b.tokens.size());
    slice.q_len = slice.kv_len = lengths[s];
    slice.block_table = {s};  // block size 16
    for (int p = 0; p < lengths[s]; p++) {
      b.tokens.push_back((p * 53 + s * 101 + 7) % 256);
      b.meta.positions.push_back(p);
      b.meta.slot_mapping.push_back(s * 16 + p);
      b.logit_rows.push_back(static_cast<int32_t>(b.tokens.size() - 1));
    }
    b.meta.seqs.push_back(slice);
  }
  return b;
}

std::vector<int32_t> host_argmax(const std::vector<float>& logits, size_t vocab) {
  std::vector<int32_t> out;
  for (size_t i = 0; i + vocab <= logits.size(); i += vocab)
    out.push_back(static_cast<int32_t>(std::max_element(logits.begin() + i, logits.begin() + i + vocab) -
                                       (logits.begin() + i)));
  return out;
}

// forward_greedy under tensor parallelism exchanges each rank's (value, id) row maxima instead of the logits:
// every rank must get the argmax of the gathered logits exactly, and so TP=1's greedy tokens.
TEST_P(TensorParallel, GreedyTokensAreTheArgmaxOfTheGatheredLogits) {
  const Case c = GetParam();
  const model::Batch batch = three_sequences();
  std::vector<int32_t> want;
  {
    auto backend = backend::make_cpu_backend();
    auto m = load(c.model, options(nullptr), backend.get());
    ASSERT_TRUE(m.ok()) << m.status().message();
    std::vector<float> logits;
    ASSERT_TRUE((*m)->forward(batch, &logits).ok());
    want = host_argmax(logits, (*m)->config().vocab_size);
  }
  ASSERT_EQ(want.size(), batch.logit_rows.size());
  ThreadGroup group(c.ranks);
  std::vector<std::vector<int32_t>> greedy(c.ranks), of_gathered(c.ranks);
  auto status = group.run([&](Communicator& comm) -> Status {
    auto backend = backend::make_cpu_backend();
    KEEL_ASSIGN_OR_RETURN(auto m, load(c.model, options(&comm), backend.get()));
    std::vector<float> logits;
    KEEL_RETURN_IF_ERROR(m->forward(batch, &logits));
    of_gathered[comm.rank()] = host_argmax(logits, m->config().vocab_size);
    // The same batch again (rewriting the same KV), greedy.
    return m->forward_greedy(batch, &greedy[comm.rank()]);
  });
  for (auto& s : status) ASSERT_TRUE(s.ok()) << s.message();
  for (int r = 0; r < c.ranks; r++) {
    EXPECT_EQ(greedy[r], of_gathered[r]) << "rank " << r;
    EXPECT_EQ(greedy[r], want) << "rank " << r;
  }
}

INSTANTIATE_TEST_SUITE_P(Families, TensorParallel,
                         ::testing::Values(Case{"llama3_v4", 2}, Case{"llama3_v4", 4},
                                           // one KV head: replicated on every rank
                                           Case{"qwen2_tied", 2}, Case{"qwen2_tied", 4},
                                           Case{"qwen3", 2}, Case{"qwen3", 4},
                                           Case{"gemma3", 2}, Case{"gemma3", 4},
                                           Case{"qwen3_moe", 2}, Case{"qwen3_moe", 4}),
                         [](const auto& info) { return info.param.model + "_tp" + std::to_string(info.param.ranks); });

TEST(TensorParallel, GreedyGenerationMatchesTheWholeModel) {
  const std::string name = "qwen2_tied";
  engine::Request r;
  r.prompt = prompt();
  r.max_tokens = 16;
  r.sampling.temperature = 0;
  r.ignore_eos = true;
  auto backend = backend::make_cpu_backend();
  auto whole = load(name, options(nullptr), backend.get());
  ASSERT_TRUE(whole.ok()) << whole.status().message();
  auto want = engine::Engine(whole->get(), engine::EngineOptions{}).generate(r);
  ASSERT_TRUE(want.ok()) << want.status().message();

  // Every rank runs the same engine on the same request: the same steps, so the same collectives in order.
  ThreadGroup group(4);
  std::vector<std::vector<int32_t>> got(4);
  auto status = group.run([&](Communicator& comm) -> Status {
    auto b = backend::make_cpu_backend();
    KEEL_ASSIGN_OR_RETURN(auto m, load(name, options(&comm), b.get()));
    KEEL_ASSIGN_OR_RETURN(got[comm.rank()], engine::Engine(m.get(), engine::EngineOptions{}).generate(r));
    return Status();
  });
  for (auto& s : status) ASSERT_TRUE(s.ok()) << s.message();
  for (int r = 0; r < 4; r++) EXPECT_EQ(got[r], *want) << "rank " << r;
}

TEST(TensorParallel, EachRankHoldsItsShareOfTheWeights) {
  auto whole_backend = backend::make_cpu_backend();
  auto whole = load("qwen3_moe", options(nullptr), whole_backend.get());
  ASSERT_TRUE(whole.ok()) << whole.status().message();
  const uint64_t all = (*whole)->weights().parameter_count;
  ThreadGroup group(4);
  std::vector<uint64_t> held(4);
  auto status = group.run([&](Communicator& comm) -> Status {
    auto b = backend::make_cpu_backend();
    KEEL_ASSIGN_OR_RETURN(auto m, load("qwen3_moe", options(&comm), b.get()));
    held[comm.rank()] = m->weights().parameter_count;
    return Status();
  });
  for (auto& s : status) ASSERT_TRUE(s.ok()) << s.message();
  // A quarter of the sharded tensors plus the replicated norms and router.
  for (int r = 0; r < 4; r++) EXPECT_LT(held[r], all * 3 / 10) << "rank " << r << " of a model of " << all;
}

TEST(TensorParallel, RanksThatDoNotDivideTheHeadsAreRefusedAtLoad) {
  auto got = tensor_parallel_logits("llama3_v4", 3);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().message(), "--tensor-parallel 3 does not divide num_attention_heads=4");
}

TEST(TensorParallel, KvHeadsThatNeitherDivideNorReplicateAreRefused) {
  model::ModelConfig c;
  c.num_heads = 12;
  c.num_kv_heads = 3;
  c.vocab_size = 96;
  auto layout = model::shard_layout(c, model::ShardSpec{0, 2});
  ASSERT_FALSE(layout.ok());
  EXPECT_EQ(layout.status().message(),
            "--tensor-parallel 2 neither divides nor is a multiple of num_key_value_heads=3");
}

TEST(TensorParallel, MoreRanksThanKvHeadsGiveEachRankTheKvHeadItsQueriesRead) {
  model::ModelConfig c;
  c.num_heads = 8;
  c.num_kv_heads = 2;  // q heads 0-3 read KV head 0, 4-7 read KV head 1
  c.vocab_size = 64;
  for (int r = 0; r < 4; r++) {
    auto l = model::shard_layout(c, model::ShardSpec{r, 4});
    ASSERT_TRUE(l.ok()) << l.status().message();
    EXPECT_EQ(l->q_head0, 2 * r);
    EXPECT_EQ(l->kv_heads, 1);
    EXPECT_EQ(l->kv_head0, r / 2) << "rank " << r;
    EXPECT_EQ(l->vocab0, 16 * r);
  }
}

}  // namespace
}  // namespace keel::dist
