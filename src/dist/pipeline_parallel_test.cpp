// Pipeline parallelism on CPU: P stages as threads, each holding its layers of a golden model, must give the
// logits of the whole model (PP=1) within fp32 rounding — alone, in micro-batches cut inside sequences, over KV
// history, in mixed prefill/decode batches, and with each stage a tensor-parallel group (TP x PP).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "backend/ops.h"
#include "base/test_util.h"
#include "dist/parallel_test_util.h"
#include "dist/thread_communicator.h"
#include "engine/engine_test_util.h"
#include "engine/follower.h"
#include "engine/engine.h"
#include "engine/model_runner.h"
#include "kv/block_pool.h"
#include "model/model.h"

namespace keel::dist {
namespace {

using testing::load;
using testing::options;
using testing::prompt;



// A TP x PP grid as tp*pp threads. The thread of (stage s, tensor-parallel rank t) gets the communicator of
// rank t in stage s's tensor-parallel group (null when tp == 1) and that of stage s in pipeline t. Returns the
// statuses indexed s*tp + t.
std::vector<Status> run_grid(int tp, int pp, const std::function<Status(int index, Communicator*, Communicator*)>& fn) {
  std::vector<std::unique_ptr<ThreadGroup>> stages, pipelines;
  for (int s = 0; s < pp; s++) stages.push_back(std::make_unique<ThreadGroup>(tp));
  for (int t = 0; t < tp; t++) pipelines.push_back(std::make_unique<ThreadGroup>(pp));
  std::vector<Status> status(tp * pp);
  std::vector<std::thread> threads;
  for (int s = 0; s < pp; s++)
    for (int t = 0; t < tp; t++)
      threads.emplace_back([&, s, t] {
        Communicator* tp_comm = tp > 1 ? &stages[s]->rank(t) : nullptr;
        status[s * tp + t] = fn(s * tp + t, tp_comm, &pipelines[t]->rank(s));
      });
  for (auto& th : threads) th.join();
  return status;
}

// Runs `work` on the whole model and on every rank of a TP x PP grid; expects every rank's result to be within
// 1e-5 relative of the whole model's and identical to every other rank's.
void expect_grid_matches_whole(const std::string& name, int tp, int pp, int micro_batches,
                               const std::function<Result<std::vector<float>>(model::Model&)>& work) {
  auto whole_backend = backend::make_cpu_backend();
  auto whole = load(name, options(nullptr, nullptr), whole_backend.get());
  ASSERT_TRUE(whole.ok()) << whole.status().message();
  auto want = work(**whole);
  ASSERT_TRUE(want.ok()) << want.status().message();

  std::vector<std::vector<float>> got(tp * pp);
  auto status = run_grid(tp, pp, [&](int index, Communicator* tp_comm, Communicator* pp_comm) -> Status {
    auto backend = backend::make_cpu_backend();
    KEEL_ASSIGN_OR_RETURN(auto m, load(name, options(tp_comm, pp_comm, micro_batches), backend.get()));
    KEEL_ASSIGN_OR_RETURN(got[index], work(*m));
    return Status();
  });
  for (auto& s : status) ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_EQ(got[0].size(), want->size());
  const double err = relative_error(got[0], *want);
  std::printf("[pp] %-12s TP=%d PP=%d M=%d logits rel. error %.3g\n", name.c_str(), tp, pp,
              micro_batches > 0 ? micro_batches : pp, err);
  EXPECT_LE(err, 1e-5);
  // Every stage returns the logits, so every stage samples the same token.
  for (int r = 1; r < tp * pp; r++) EXPECT_EQ(got[r], got[0]) << "rank " << r;
}

struct Case {
  std::string model;
  int tp = 1, pp = 2;
  int micro_batches = 0;  // 0: one per stage
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.model << " TP=" << c.tp << " PP=" << c.pp << " M=" << c.micro_batches;
}

class PipelineParallel : public ::testing::TestWithParam<Case> {};

TEST_P(PipelineParallel, LogitsMatchTheWholeModel) {
  const Case c = GetParam();
  expect_grid_matches_whole(c.model, c.tp, c.pp, c.micro_batches,
                            [](model::Model& m) { return engine::all_logits(m, prompt()); });
}

INSTANTIATE_TEST_SUITE_P(
    Families, PipelineParallel,
    ::testing::Values(Case{"llama3_v4", 1, 2},
                      Case{"qwen2_tied", 1, 2},  // tied: the last stage binds the embedding for its head
                      Case{"qwen3", 1, 2}, Case{"qwen3", 1, 3},
                      Case{"gemma3", 1, 2}, Case{"gemma3", 1, 4},  // sliding layers split over stages
                      Case{"qwen3_moe", 1, 3},                     // the dense layer and MoE layers apart
                      Case{"llama_dynamic", 1, 2},  // dynamic rope: a cut sequence keeps its step's length
                      Case{"gemma3_v4", 1, 4},      // 6 layers over 4 stages: 1, 2, 1, 2
                      Case{"llama3_v4", 1, 2, 1},   // no micro-batching
                      Case{"qwen3", 1, 3, 5},       // more micro-batches than stages
                      Case{"qwen3", 1, 2, 16},      // one token per micro-batch
                      Case{"llama3_v4", 2, 2}, Case{"qwen2_tied", 2, 2}, Case{"gemma3", 2, 2},
                      Case{"qwen3_moe", 2, 3}, Case{"qwen2_tied", 4, 2}),
    [](const auto& info) {
      const Case& c = info.param;
      std::string name = c.model + "_tp" + std::to_string(c.tp) + "_pp" + std::to_string(c.pp);
      if (c.micro_batches > 0) name += "_m" + std::to_string(c.micro_batches);
      return name;
    });

// Three sequences over three steps: prefill chunks next to decodes, logits for some rows only (not in row order
// after the first step), cuts that fall inside sequences and on their boundaries.
class Steps {
 public:
  explicit Steps(const model::Model& m) : pool_(m.kv_layout().num_blocks, m.kv_layout().block_size) {
    for (int i = 0; i < 3; i++) seqs_.emplace_back(m.kv_layout().block_size);
  }

  Result<std::vector<float>> run(model::Model& m) {
    // {sequence, new tokens, of which the last `logits` want logits}
    const std::vector<std::vector<std::array<int, 3>>> steps = {
        {{0, 10, 1}, {1, 5, 5}},
        {{0, 1, 1}, {1, 3, 1}, {2, 6, 6}},
        {{2, 1, 1}, {0, 1, 1}, {1, 1, 1}},
    };
    std::vector<float> all, logits;
    for (auto& step : steps) {
      model::Batch b;
      for (auto [s, q, n] : step) KEEL_RETURN_IF_ERROR(add(b, s, q, n));
      // Even rows first: a micro-batch's logits then go to rows of the step's logits that are not adjacent.
      if (&step != &steps.front())
        std::stable_partition(b.logit_rows.begin(), b.logit_rows.end(), [](int32_t r) { return r % 2 == 0; });
      KEEL_RETURN_IF_ERROR(m.forward(b, &logits));
      all.insert(all.end(), logits.begin(), logits.end());
    }
    return all;
  }

 private:
  Status add(model::Batch& b, int s, int q, int logits) {
    kv::BlockTable& table = seqs_[s];
    const int begin = table.num_tokens(), row0 = static_cast<int>(b.tokens.size());
    KEEL_RETURN_IF_ERROR(table.append(pool_, q));
    for (int p = begin; p < begin + q; p++) {
      b.tokens.push_back((p * 31 + s * 57 + 5) % 256);
      b.meta.positions.push_back(p);
      b.meta.slot_mapping.push_back(table.slot(p));
    }
    b.meta.seqs.push_back(backend::SeqSlice{row0, q, begin + q, table.blocks()});
    for (int i = q - logits; i < q; i++) b.logit_rows.push_back(row0 + i);
    return Status();
  }

  kv::BlockPool pool_;
  std::vector<kv::BlockTable> seqs_;
};

TEST(PipelineParallel, MixedPrefillAndDecodeBatchesMatchTheWholeModel) {
  for (int m : {2, 3, 7})
    expect_grid_matches_whole("qwen3", 1, 3, m, [](model::Model& model) { return Steps(model).run(model); });
  expect_grid_matches_whole("gemma3", 2, 2, 3, [](model::Model& model) { return Steps(model).run(model); });
}

TEST(PipelineParallel, GreedyGenerationMatchesTheWholeModel) {
  engine::Request r;
  r.prompt = prompt();
  r.max_tokens = 16;
  r.sampling.temperature = 0;
  r.ignore_eos = true;
  // Every stage runs the same engine on the same request: the same steps, so the same sends and receives.
  auto as_floats = [&](model::Model& m) -> Result<std::vector<float>> {
    KEEL_ASSIGN_OR_RETURN(auto tokens, engine::Engine(&m, engine::EngineOptions{}).generate(r));
    return std::vector<float>(tokens.begin(), tokens.end());
  };
  expect_grid_matches_whole("qwen2_tied", 1, 2, 0, as_floats);
  expect_grid_matches_whole("gemma3", 2, 4, 0, as_floats);
}

TEST(PipelineParallel, EachStageHoldsItsLayersOnly) {
  auto whole_backend = backend::make_cpu_backend();
  auto whole = load("gemma3", options(nullptr, nullptr), whole_backend.get());
  ASSERT_TRUE(whole.ok()) << whole.status().message();
  const model::ModelConfig& c = (*whole)->config();
  const uint64_t embed = static_cast<uint64_t>(c.vocab_size) * c.hidden_size;
  const uint64_t all = (*whole)->weights().parameter_count;
  const uint64_t layers = all - embed - c.hidden_size;  // gemma3 ties its head to the embedding

  std::vector<uint64_t> held(4), kv_bytes(4);
  std::vector<int> first(4), count(4);
  auto status = run_grid(1, 4, [&](int s, Communicator*, Communicator* pp) -> Status {
    auto b = backend::make_cpu_backend();
    KEEL_ASSIGN_OR_RETURN(auto m, load("gemma3", options(nullptr, pp), b.get()));
    held[s] = m->weights().parameter_count;
    kv_bytes[s] = m->kv_bytes_per_token();
    first[s] = m->shard().layer0;
    count[s] = m->kv_layout().num_layers;
    return Status();
  });
  for (auto& s : status) ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(first, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(count, (std::vector<int>{1, 1, 1, 1}));
  // Stage 0: the embedding and one layer; middle stages a layer; the last stage a layer, the final norm and the
  // embedding again as its tied head.
  EXPECT_EQ(held[0], embed + layers / 4);
  EXPECT_EQ(held[1], layers / 4);
  EXPECT_EQ(held[2], layers / 4);
  EXPECT_EQ(held[3], embed + layers / 4 + c.hidden_size);
  for (int s = 0; s < 4; s++) EXPECT_EQ(kv_bytes[s] * 4, (*whole)->kv_bytes_per_token()) << "stage " << s;
}

TEST(PipelineParallel, UntiedHeadLivesOnTheLastStageOnly) {
  auto whole_backend = backend::make_cpu_backend();
  auto whole = load("qwen3", options(nullptr, nullptr), whole_backend.get());
  ASSERT_TRUE(whole.ok()) << whole.status().message();
  ASSERT_FALSE((*whole)->config().tie_word_embeddings);
  std::vector<uint64_t> held(3);
  // One element per stage thread: not vector<bool>, whose elements share a word (a data race, found by TSan).
  std::vector<int> has_embed(3), has_head(3);
  auto status = run_grid(1, 3, [&](int s, Communicator*, Communicator* pp) -> Status {
    auto b = backend::make_cpu_backend();
    KEEL_ASSIGN_OR_RETURN(auto m, load("qwen3", options(nullptr, pp), b.get()));
    held[s] = m->weights().parameter_count;
    has_embed[s] = !m->weights().embed.empty();
    has_head[s] = !m->weights().lm_head.empty() && !m->weights().final_norm.empty();
    return Status();
  });
  for (auto& s : status) ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(has_embed, (std::vector<int>{1, 0, 0}));
  EXPECT_EQ(has_head, (std::vector<int>{0, 0, 1}));
  EXPECT_EQ(held[0] + held[1] + held[2], (*whole)->weights().parameter_count);  // nothing held twice
}

// The serving engine over a pipeline: the engine runs on stage 0 (TP rank 0) and sends each step's plan over a
// communicator spanning the whole grid; every other rank runs run_follower. Three concurrent greedy requests of
// different lengths, so steps mix prefill chunks and decodes; the tokens must be the whole model's.
std::vector<std::vector<int32_t>> serve_three(engine::Engine& e) {
  std::vector<engine::testing::Collector> c(3);
  for (int i = 0; i < 3; i++)
    EXPECT_TRUE(e.submit(engine::testing::greedy(engine::testing::prompt(5 + 9 * i, i), 12), c[i].callback()).ok());
  std::vector<std::vector<int32_t>> out;
  for (auto& x : c) {
    EXPECT_TRUE(x.wait());
    out.push_back(x.tokens);
  }
  return out;
}

model::LoadOptions engine_options(Communicator* tp, Communicator* pp) {
  model::LoadOptions o = options(tp, pp);
  o.max_batch_tokens = 64;
  o.kv_blocks = 64;
  o.block_size = 4;
  return o;
}

TEST(PipelineParallelEngine, LeaderWithFollowersGivesTheWholeModelsGreedyTokens) {
  const std::string name = "qwen3_moe";
  std::vector<std::vector<int32_t>> want;
  {
    auto b = backend::make_cpu_backend();
    auto whole = load(name, engine_options(nullptr, nullptr), b.get());
    ASSERT_TRUE(whole.ok()) << whole.status().message();
    engine::Engine e(whole->get(), engine::EngineOptions{});
    want = serve_three(e);
  }
  // {tp, pp, plans over the pipeline communicator itself (TP=1 only)}
  for (auto [tp, pp, over_pipeline] : {std::tuple{1, 3, false}, std::tuple{2, 3, false}, std::tuple{1, 2, true}}) {
    ThreadGroup world(tp * pp);  // the step plans' channel; rank s*tp + t
    std::vector<std::vector<int32_t>> got;
    uint64_t allocations_after_warmup = 1;
    auto status = run_grid(tp, pp, [&](int index, Communicator* tp_comm, Communicator* pp_comm) -> Status {
      auto b = backend::make_cpu_backend();
      KEEL_ASSIGN_OR_RETURN(auto m, load(name, engine_options(tp_comm, pp_comm), b.get()));
      Communicator& plans = over_pipeline ? *pp_comm : world.rank(index);
      if (index != 0) return engine::run_follower(*m, plans);
      engine::StepLeader leader(&plans);
      engine::EngineOptions eo;
      eo.leader = &leader;
      {
        engine::Engine e(m.get(), eo);
        got = serve_three(e);
        allocations_after_warmup = e.stats().allocations_after_warmup;
        EXPECT_EQ(e.failure(), "");
      }
      return leader.shutdown();
    });
    for (auto& s : status) ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_EQ(got, want) << "TP=" << tp << " PP=" << pp;
    EXPECT_EQ(allocations_after_warmup, 0u);
  }
}

// Records the point-to-point traffic and broadcasts of one stage, passing everything through.
class Recorder final : public Communicator {
 public:
  explicit Recorder(Communicator* inner) : inner_(inner) {}
  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }
  Status all_reduce_sum(float* data, size_t n) override { return inner_->all_reduce_sum(data, n); }
  Status all_gather(const float* send, size_t n, float* recv) override { return inner_->all_gather(send, n, recv); }
  Status barrier() override { return inner_->barrier(); }
  Status broadcast(void* data, size_t n, int root) override {
    log.push_back(fmt::format("broadcast {} bytes from {}", n, root));
    return inner_->broadcast(data, n, root);
  }
  Status send(const float* data, size_t n, int peer) override {
    log.push_back(fmt::format("send {} to {}", n, peer));
    return inner_->send(data, n, peer);
  }
  Status recv(float* data, size_t n, int peer) override {
    log.push_back(fmt::format("recv {} from {}", n, peer));
    return inner_->recv(data, n, peer);
  }
  std::vector<std::string> log;

 private:
  Communicator* inner_;
};

TEST(PipelineParallel, StagesHandOnEachMicroBatchThenTheLastBroadcastsTheLogits) {
  std::vector<std::vector<std::string>> logs(3);
  int hidden = 0, vocab = 0;
  auto status = run_grid(1, 3, [&](int s, Communicator*, Communicator* pp) -> Status {
    Recorder rec(pp);
    auto b = backend::make_cpu_backend();
    KEEL_ASSIGN_OR_RETURN(auto m, load("qwen3", options(nullptr, &rec), b.get()));
    hidden = m->config().hidden_size;
    vocab = m->config().vocab_size;
    const std::vector<int32_t> tokens = prompt();
    KEEL_RETURN_IF_ERROR(engine::all_logits(*m, std::vector<int32_t>(tokens.begin(), tokens.begin() + 7)).status());
    logs[s] = rec.log;
    return Status();
  });
  for (auto& s : status) ASSERT_TRUE(s.ok()) << s.message();
  // 7 tokens in 3 micro-batches of 2, 2 and 3 rows; 7 rows of logits.
  const std::string bcast = fmt::format("broadcast {} bytes from 2", 7 * vocab * 4);
  auto msg = [&](const char* op, int rows, int peer) { return fmt::format("{} {} {} {}", op, rows * hidden, op[0] == 's' ? "to" : "from", peer); };
  EXPECT_EQ(logs[0], (std::vector<std::string>{msg("send", 2, 1), msg("send", 2, 1), msg("send", 3, 1), bcast}));
  EXPECT_EQ(logs[1], (std::vector<std::string>{msg("recv", 2, 0), msg("send", 2, 2), msg("recv", 2, 0),
                                               msg("send", 2, 2), msg("recv", 3, 0), msg("send", 3, 2), bcast}));
  EXPECT_EQ(logs[2], (std::vector<std::string>{msg("recv", 2, 1), msg("recv", 2, 1), msg("recv", 3, 1), bcast}));
}

// Micro-batches in flight: stage 0 must not wait for stage 1 between micro-batches. Stage 1's first recv is held
// until stage 0 has sent every micro-batch (which it can only do by running ahead), or fails after 30 s.
TEST(PipelineParallel, StageZeroRunsAheadWhileTheNextStageWorks) {
  struct Gate {
    std::mutex mu;
    std::condition_variable cv;
    int sent = 0;
  } gate;
  class Counting final : public Communicator {
   public:
    Counting(Communicator* inner, Gate* gate, int wait_for) : inner_(inner), gate_(gate), wait_for_(wait_for) {}
    int rank() const override { return inner_->rank(); }
    int size() const override { return inner_->size(); }
    Status all_reduce_sum(float* d, size_t n) override { return inner_->all_reduce_sum(d, n); }
    Status all_gather(const float* s, size_t n, float* r) override { return inner_->all_gather(s, n, r); }
    Status barrier() override { return inner_->barrier(); }
    Status broadcast(void* d, size_t n, int root) override { return inner_->broadcast(d, n, root); }
    Status send(const float* d, size_t n, int peer) override {
      KEEL_RETURN_IF_ERROR(inner_->send(d, n, peer));
      std::lock_guard lock(gate_->mu);
      gate_->sent++;
      gate_->cv.notify_all();
      return Status();
    }
    Status recv(float* d, size_t n, int peer) override {
      std::unique_lock lock(gate_->mu);
      if (!gate_->cv.wait_for(lock, std::chrono::seconds(30), [&] { return gate_->sent >= wait_for_; }))
        return internal_error("stage 0 sent {} of {} micro-batches before stage 1 took the first", gate_->sent,
                              wait_for_);
      lock.unlock();
      return inner_->recv(d, n, peer);
    }

   private:
    Communicator* inner_;
    Gate* gate_;
    int wait_for_;
  };
  const int micro_batches = 4;
  auto status = run_grid(1, 2, [&](int s, Communicator*, Communicator* pp) -> Status {
    Counting counting(pp, &gate, micro_batches);
    auto b = backend::make_cpu_backend();
    KEEL_ASSIGN_OR_RETURN(auto m, load("llama3_v4", options(nullptr, &counting, micro_batches), b.get()));
    const std::vector<int32_t> tokens = prompt();
    return engine::all_logits(*m, std::vector<int32_t>(tokens.begin(), tokens.begin() + 16)).status();
  });
  for (auto& s : status) EXPECT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(gate.sent, micro_batches);
}

TEST(PipelineParallel, MoreStagesThanLayersAreRefusedAtLoad) {
  auto status = run_grid(1, 3, [&](int s, Communicator*, Communicator* pp) -> Status {
    auto b = backend::make_cpu_backend();
    return load("llama3_v4", options(nullptr, pp), b.get()).status();
  });
  for (auto& s : status) {
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.message(), "--pipeline-parallel 3 exceeds num_hidden_layers=2: every stage needs a layer");
  }
}

TEST(PipelineParallel, NegativeMicroBatchesAreRefused) {
  auto b = backend::make_cpu_backend();
  auto m = load("llama3_v4", options(nullptr, nullptr, -1), b.get());
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().message(), "micro_batches=-1 must be >= 0 (0: one per pipeline stage)");
}

TEST(PipelineParallel, LayersSplitAsEvenlyAsTheyCan) {
  model::ModelConfig c;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.vocab_size = 64;
  c.num_layers = 7;
  c.layers.assign(7, model::LayerSpec{});
  std::vector<int> first, count;
  for (int s = 0; s < 3; s++) {
    auto l = model::shard_layout(c, model::ShardSpec{0, 1, s, 3});
    ASSERT_TRUE(l.ok()) << l.status().message();
    first.push_back(l->layer0);
    count.push_back(l->layers);
    EXPECT_EQ(l->embed, s == 0);
    EXPECT_EQ(l->head, s == 2);
    EXPECT_EQ(model::local_config(c, *l).num_layers, l->layers);
  }
  EXPECT_EQ(first, (std::vector<int>{0, 2, 4}));
  EXPECT_EQ(count, (std::vector<int>{2, 2, 3}));
}

}  // namespace
}  // namespace keel::dist
