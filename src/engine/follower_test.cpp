// The tensor-parallel engine: rank 0 runs the Engine with a StepLeader, the other ranks run_follower, and the
// greedy tokens match one whole-model engine. Ranks as threads (ThreadGroup), as on the CPU tests of the
// sharding itself.
#include "engine/follower.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <thread>

#include "dist/tcp_communicator.h"
#include "dist/thread_communicator.h"
#include "engine/engine_test_util.h"

namespace keel::engine {
namespace {

using testing::Collector;
using testing::greedy;
using testing::prompt;

const std::string kLlama = std::string(KEEL_SOURCE_DIR) + "/tests/golden/models/llama3_v4";

struct Rank {
  std::unique_ptr<backend::Backend> backend;
  std::unique_ptr<model::Model> model;
};

Result<Rank> load_rank(const std::string& dir, dist::Communicator* comm) {
  Rank r;
  r.backend = backend::make_cpu_backend();
  model::LoadOptions o;
  o.max_batch_tokens = 64;
  o.kv_blocks = 64;
  o.block_size = 4;
  o.communicator = comm;
  KEEL_ASSIGN_OR_RETURN(r.model, model::Model::load(env::Env::posix(), dir, r.backend.get(), o));
  return r;
}

// Three concurrent greedy requests of different lengths (so steps mix prefill chunks and decodes). mixed: the
// second asks for logprobs over 6 tokens, so the steps it samples in need the logits (forward) and the others
// only the argmax (forward_greedy), and the followers must switch with the leader.
std::vector<std::vector<int32_t>> serve_three(Engine& engine, bool mixed = false) {
  std::vector<Collector> c(3);
  for (int i = 0; i < 3; i++) {
    Request r = greedy(prompt(5 + 9 * i, i), mixed && i == 1 ? 6 : 12);
    if (mixed && i == 1) r.top_logprobs = 1;
    EXPECT_TRUE(engine.submit(std::move(r), c[i].callback()).ok());
  }
  std::vector<std::vector<int32_t>> out;
  for (auto& x : c) {
    EXPECT_TRUE(x.wait());
    EXPECT_EQ(x.finish, FinishReason::kLength);
    out.push_back(x.tokens);
  }
  return out;
}

TEST(StepPlan, EncodesAndDecodesEveryField) {
  model::Batch b;
  b.tokens = {5, 6, 7};
  b.meta.positions = {0, 1, 9};
  b.meta.slot_mapping = {40, 41, 77};
  b.meta.seqs = {{0, 2, 2, {10}}, {2, 1, 10, {3, 19, 4}}};
  b.logit_rows = {1, 2};
  for (bool greedy : {false, true}) {
    const std::vector<uint8_t> bytes = encode_forward(b, greedy);
    auto d = decode_forward(bytes.data(), bytes.size());
    ASSERT_TRUE(d.ok()) << d.status().message();
    EXPECT_EQ(d->greedy, greedy);
    EXPECT_EQ(d->batch.tokens, b.tokens);
    EXPECT_EQ(d->batch.meta.positions, b.meta.positions);
    EXPECT_EQ(d->batch.meta.slot_mapping, b.meta.slot_mapping);
    ASSERT_EQ(d->batch.meta.seqs.size(), 2u);
    EXPECT_EQ(d->batch.meta.seqs[1].kv_len, 10);
    EXPECT_EQ(d->batch.meta.seqs[1].block_table, (std::vector<int32_t>{3, 19, 4}));
    EXPECT_EQ(d->batch.logit_rows, b.logit_rows);
    // Every truncation is an error, never a crash or a partial batch.
    for (size_t n = 0; n < bytes.size(); n++) EXPECT_FALSE(decode_forward(bytes.data(), n).ok()) << n;
  }
}

TEST(StepPlan, UnknownFlagsAreRefused) {
  model::Batch b;
  b.tokens = {5};
  b.meta.positions = {0};
  b.meta.slot_mapping = {0};
  b.meta.seqs = {{0, 1, 1, {0}}};
  b.logit_rows = {0};
  std::vector<uint8_t> bytes = encode_forward(b, true);
  bytes[0] |= 2;  // flags are the payload's first word
  auto d = decode_forward(bytes.data(), bytes.size());
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().message(), "step plan: unknown flags 0x3");
}

void expect_whole_models_tokens(const std::vector<int>& worlds, bool mixed) {
  std::vector<std::vector<int32_t>> want;
  {
    auto whole = load_rank(kLlama, nullptr);
    ASSERT_TRUE(whole.ok()) << whole.status().message();
    Engine engine(whole->model.get(), EngineOptions{});
    want = serve_three(engine, mixed);
  }
  for (int world : worlds) {
    dist::ThreadGroup group(world);
    std::vector<std::vector<int32_t>> got;
    uint64_t allocations_after_warmup = 1;
    auto status = group.run([&](dist::Communicator& comm) -> Status {
      KEEL_ASSIGN_OR_RETURN(Rank r, load_rank(kLlama, &comm));
      if (comm.rank() != 0) return run_follower(*r.model, comm);
      StepLeader leader(&comm);
      EngineOptions eo;
      eo.leader = &leader;
      {
        Engine engine(r.model.get(), eo);
        got = serve_three(engine, mixed);
        allocations_after_warmup = engine.stats().allocations_after_warmup;
        EXPECT_EQ(engine.failure(), "");
      }
      return leader.shutdown();
    });
    for (auto& s : status) ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_EQ(got, want) << "TP=" << world;
    EXPECT_EQ(allocations_after_warmup, 0u);
  }
}

TEST(TensorParallelEngine, LeaderWithFollowersGivesTheWholeModelsGreedyTokens) {
  expect_whole_models_tokens({2, 4}, false);
}

TEST(TensorParallelEngine, FollowersSwitchBetweenGreedyAndLogitStepsWithTheLeader) {
  expect_whole_models_tokens({2}, true);
}

// A follower process that dies mid-request: its links close (TcpCommunicator::abort does what exit does).
class DiesAfter final : public dist::Communicator {
 public:
  DiesAfter(dist::TcpCommunicator* c, int broadcasts) : c_(c), left_(broadcasts) {}
  int rank() const override { return c_->rank(); }
  int size() const override { return c_->size(); }
  Status all_reduce_sum(float* d, size_t n) override { return c_->all_reduce_sum(d, n); }
  Status all_gather(const float* s, size_t n, float* r) override { return c_->all_gather(s, n, r); }
  Status barrier() override { return c_->barrier(); }
  Status broadcast(void* d, size_t n, int root) override {
    if (--left_ < 0) {
      c_->abort(io_error("killed"));
      return io_error("killed");
    }
    return c_->broadcast(d, n, root);
  }
  Status send(const float* d, size_t n, int p) override { return c_->send(d, n, p); }
  Status recv(float* d, size_t n, int p) override { return c_->recv(d, n, p); }

 private:
  dist::TcpCommunicator* c_;
  int left_;
};

TEST(TensorParallelEngine, ARankThatDiesFailsEveryRequestAndStopsTheEngine) {
  const int port = 29000 + static_cast<int>(::getpid() % 2000);
  Collector first, second;
  std::string failure, refused;
  std::vector<Status> status(2);
  std::vector<std::thread> ranks;
  for (int rank = 0; rank < 2; rank++) {
    ranks.emplace_back([&, rank] {
      status[rank] = [&]() -> Status {
        dist::TcpOptions o;
        o.rank = rank;
        o.world = 2;
        o.master_port = port;
        o.timeout = std::chrono::milliseconds(10000);
        KEEL_ASSIGN_OR_RETURN(auto tcp, dist::TcpCommunicator::connect(o));
        KEEL_ASSIGN_OR_RETURN(Rank r, load_rank(kLlama, tcp.get()));
        if (rank == 1) {
          DiesAfter dying(tcp.get(), 2 * 6);  // six steps (header + plan each), then gone
          Status s = run_follower(*r.model, dying);
          return s.ok() ? internal_error("the follower finished cleanly") : Status();
        }
        StepLeader leader(tcp.get());
        EngineOptions eo;
        eo.leader = &leader;
        Engine engine(r.model.get(), eo);
        EXPECT_TRUE(engine.submit(greedy(prompt(6, 1), 40), first.callback()).ok());
        EXPECT_TRUE(engine.submit(greedy(prompt(9, 2), 40), second.callback()).ok());
        EXPECT_TRUE(first.wait());
        EXPECT_TRUE(second.wait());
        failure = engine.failure();
        auto again = engine.submit(greedy(prompt(3, 3), 2), [](const Event&) {});
        if (!again.ok()) refused = again.status().message();
        return Status();
      }();
    });
  }
  for (auto& t : ranks) t.join();
  for (auto& s : status) EXPECT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(first.finish, FinishReason::kError);
  EXPECT_EQ(second.finish, FinishReason::kError);
  EXPECT_LT(first.tokens.size(), 40u);
  EXPECT_NE(failure.find("closed its connection"), std::string::npos) << failure;
  EXPECT_NE(refused.find("the engine has stopped"), std::string::npos) << refused;
}

TEST(TensorParallelEngine, AnIdleLeaderFindsADeadFollowerByItsHeartbeat) {
  const int port = 31000 + static_cast<int>(::getpid() % 2000);
  std::string failure;
  std::vector<std::thread> ranks;
  for (int rank = 0; rank < 2; rank++) {
    ranks.emplace_back([&, rank] {
      dist::TcpOptions o;
      o.rank = rank;
      o.world = 2;
      o.master_port = port;
      auto tcp = dist::TcpCommunicator::connect(o);
      ASSERT_TRUE(tcp.ok()) << tcp.status().message();
      auto r = load_rank(kLlama, tcp->get());
      ASSERT_TRUE(r.ok()) << r.status().message();
      if (rank == 1) {
        DiesAfter dying(tcp->get(), 0);  // gone before any work arrives
        EXPECT_FALSE(run_follower(*r->model, dying).ok());
        return;
      }
      StepLeader leader(tcp->get());
      EngineOptions eo;
      eo.leader = &leader;
      Engine engine(r->model.get(), eo);
      const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (engine.failure().empty() && std::chrono::steady_clock::now() < end)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      failure = engine.failure();
    });
  }
  for (auto& t : ranks) t.join();
  EXPECT_NE(failure.find("closed its connection"), std::string::npos) << failure;
}

}  // namespace
}  // namespace keel::engine
