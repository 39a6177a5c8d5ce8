// Tensor parallelism on GPUs: two ranks as threads, one GPU each, NCCL device collectives (control plane: a
// ThreadGroup). TP=2 logits against TP=1 on the same GPU type and against transformers' goldens; greedy tokens;
// the engine with a follower rank (decode graphs with the collectives captured inside, no allocation after
// warm-up); a rank that goes away fails the other instead of hanging it. Skips with fewer than two GPUs.
#include "backend/cuda/nccl_communicator.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <functional>
#include <future>
#include <thread>

#include "backend/cuda/cuda_backend.h"
#include "base/test_util.h"
#include "dist/tcp_communicator.h"
#include "dist/thread_communicator.h"
#include "engine/engine.h"
#include "engine/follower.h"
#include "engine/generate.h"
#include "format/npy.h"
#include "model/model.h"

namespace keel::backend {
namespace {

const std::string kGolden = std::string(KEEL_SOURCE_DIR) + "/tests/golden/models/";

#define REQUIRE_TWO_GPUS() \
  if (cuda_device_count() < 2) GTEST_SKIP() << "tensor parallelism on CUDA needs 2 GPUs, " << cuda_device_count() << " visible"

model::LoadOptions options(dist::Communicator* comm) {
  model::LoadOptions o;
  o.max_batch_tokens = 64;
  o.kv_blocks = 64;
  o.block_size = 16;
  o.communicator = comm;
  return o;
}

// NCCL's settings, made once before any rank thread starts (setenv is not thread-safe).
void nccl_env() {
  setenv("NCCL_NVLS_ENABLE", "0", 1);
  setenv("NCCL_RUNTIME_CONNECT", "0", 0);
  setenv("NCCL_GRAPH_REGISTER", "0", 0);
}

// Runs fn(rank's communicator, rank's backend) on two threads, rank r on GPU r.
std::vector<Status> on_two_gpus(const std::function<Status(dist::Communicator&, Backend&)>& fn) {
  nccl_env();
  dist::ThreadGroup control(2);
  return control.run([&](dist::Communicator& c) -> Status {
    KEEL_ASSIGN_OR_RETURN(auto backend, make_cuda_backend(c.rank()));
    KEEL_ASSIGN_OR_RETURN(auto nccl, NcclCommunicator::create(&c, backend.get(), std::chrono::seconds(60)));
    if (c.rank() == 0)
      std::printf("[tp] %s, %.0f MiB of device memory for NCCL\n", nccl->version().c_str(),
                  nccl->device_bytes() / 1048576.0);
    return fn(*nccl, *backend);
  });
}

TEST(NcclCommunicator, DeviceAllReduceAndAllGatherAreExactOnBothRanks) {
  REQUIRE_TWO_GPUS();
  auto status = on_two_gpus([](dist::Communicator& c, Backend& b) -> Status {
    const int n = 4096;
    KEEL_ASSIGN_OR_RETURN(Tensor t, b.alloc(DType::kF32, 1, n));
    KEEL_ASSIGN_OR_RETURN(Tensor all, b.alloc(DType::kF32, 2, n));
    std::vector<float> host(n);
    for (int i = 0; i < n; i++) host[i] = static_cast<float>(c.rank() * 1000 + i);
    b.copy_from_host(host.data(), t);
    KEEL_RETURN_IF_ERROR(c.all_gather_device(t.data, n, DType::kF32, all.data));
    KEEL_RETURN_IF_ERROR(c.all_reduce_sum_device(t.data, n, DType::kF32));
    KEEL_RETURN_IF_ERROR(c.synchronize());
    b.copy_to_host(t, host.data());
    for (int i = 0; i < n; i++) EXPECT_EQ(host[i], static_cast<float>(1000 + 2 * i));
    std::vector<float> gathered(2 * n);
    b.copy_to_host(all, gathered.data());
    for (int i = 0; i < 2 * n; i++) EXPECT_EQ(gathered[i], static_cast<float>((i / n) * 1000 + i % n));
    return Status();
  });
  for (auto& s : status) ASSERT_TRUE(s.ok()) << s.message();
}

class NcclTensorParallel : public ::testing::TestWithParam<std::string> {};

// TP=2 on two GPUs: the logits of transformers' golden within the single-GPU bound, within rounding of TP=1 on
// one GPU, the same on both ranks; greedy tokens the golden's (F32 checkpoints).
TEST_P(NcclTensorParallel, LogitsAndGreedyTokensMatchOneGpu) {
  REQUIRE_TWO_GPUS();
  const std::string name = GetParam();
  auto golden = nlohmann::json::parse(*env::Env::posix()->read_file(kGolden + name + "/golden.json"));
  auto want = *format::read_npy(env::Env::posix(), kGolden + name + "/logits.npy");
  auto tokens = golden["tokens"].get<std::vector<int32_t>>();
  std::vector<float> tp1;
  bool f32 = false;
  {
    auto gpu = make_cuda_backend(0).value();
    auto m = model::Model::load(env::Env::posix(), kGolden + name, gpu.get(), options(nullptr));
    ASSERT_TRUE(m.ok()) << m.status().message();
    tp1 = engine::all_logits(**m, tokens).value();
    f32 = gpu->act_dtype() == DType::kF32;
  }
  std::vector<std::vector<float>> logits(2);
  std::vector<std::vector<int32_t>> greedy(2);
  auto status = on_two_gpus([&](dist::Communicator& c, Backend& b) -> Status {
    KEEL_ASSIGN_OR_RETURN(auto m, model::Model::load(env::Env::posix(), kGolden + name, &b, options(&c)));
    KEEL_ASSIGN_OR_RETURN(logits[c.rank()], engine::all_logits(*m, tokens));
    if (golden["greedy"].is_null() || !f32) return Status();
    engine::GenerateOptions g;
    g.max_tokens = 24;
    g.sampling.temperature = 0;
    KEEL_ASSIGN_OR_RETURN(greedy[c.rank()], engine::generate(*m, tokens, g));
    return Status();
  });
  for (auto& s : status) ASSERT_TRUE(s.ok()) << s.message();
  const double vs_tp1 = relative_error(logits[0], tp1), vs_golden = relative_error(logits[0], want.data);
  std::printf("[tp] %-22s %s TP=2 vs TP=1 rel. error %.3g, vs transformers %.3g\n", name.c_str(),
              f32 ? "F32" : "BF16", vs_tp1, vs_golden);
  EXPECT_LE(vs_tp1, f32 ? 1e-5 : 2e-2);
  EXPECT_LE(vs_golden, f32 ? 1e-4 : 3e-2);
  EXPECT_EQ(logits[1], logits[0]) << "the ranks' gathered logits differ";
  if (!greedy[0].empty()) {
    EXPECT_EQ(greedy[0], golden["greedy"].get<std::vector<int32_t>>());
    EXPECT_EQ(greedy[1], greedy[0]);
  }
}

INSTANTIATE_TEST_SUITE_P(Families, NcclTensorParallel,
                         ::testing::Values("llama3_v4", "qwen2_v4", "qwen2_tied", "qwen3", "qwen3_yarn_v4",
                                           "gemma3", "mistral_bf16", "qwen3_moe_sparse2_v4"));

std::vector<int32_t> prompt(int n, int salt) {
  std::vector<int32_t> p;
  for (int i = 0; i < n; i++) p.push_back((i * 31 + salt * 17 + 5) % 256);
  return p;
}

// Four concurrent greedy requests through an engine: decode steps replay graphs (batch sizes 1..4).
Result<std::vector<std::vector<int32_t>>> serve_four(engine::Engine& e) {
  std::vector<std::promise<void>> done(4);
  std::vector<std::vector<int32_t>> out(4);
  for (int i = 0; i < 4; i++) {
    engine::Request r;
    r.prompt = prompt(7 + 11 * i, i);
    r.max_tokens = 20;
    r.sampling.temperature = 0;
    r.ignore_eos = true;
    KEEL_RETURN_IF_ERROR(e.submit(r, [&, i](const engine::Event& ev) {
                            if (ev.token >= 0) out[i].push_back(ev.token);
                            if (ev.finish != engine::FinishReason::kNone) done[i].set_value();
                          }).status());
  }
  for (auto& d : done) d.get_future().wait();
  return out;
}

TEST(NcclTensorParallel, EngineWithAFollowerRankGivesOneGpusTokensWithoutAllocating) {
  REQUIRE_TWO_GPUS();
  const std::string dir = kGolden + "llama3_v4";
  std::vector<std::vector<int32_t>> want, got;
  {
    auto gpu = make_cuda_backend(0).value();
    auto m = model::Model::load(env::Env::posix(), dir, gpu.get(), options(nullptr)).value();
    engine::Engine e(m.get(), engine::EngineOptions{});
    want = serve_four(e).value();
  }
  uint64_t allocations = 1;
  auto status = on_two_gpus([&](dist::Communicator& c, Backend& b) -> Status {
    KEEL_ASSIGN_OR_RETURN(auto m, model::Model::load(env::Env::posix(), dir, &b, options(&c)));
    if (c.rank() == 1) return engine::run_follower(*m, c);
    engine::StepLeader leader(&c);
    engine::EngineOptions eo;
    eo.leader = &leader;
    {
      engine::Engine e(m.get(), eo);
      KEEL_ASSIGN_OR_RETURN(got, serve_four(e));
      allocations = e.stats().allocations_after_warmup;
    }
    return leader.shutdown();
  });
  for (auto& s : status) ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(got, want);
  EXPECT_EQ(allocations, 0u);
}

// A rank process that exits: its control links close and the survivor's step fails within a second (NCCL
// itself would wait on the dead peer for ever).
TEST(NcclTensorParallel, ARankThatExitsFailsTheOthersStepInsteadOfHangingIt) {
  REQUIRE_TWO_GPUS();
  const int port = 29500 + static_cast<int>(::getpid() % 1000);
  nccl_env();
  std::vector<Status> status(2);
  double waited = 0;
  std::vector<std::thread> threads;
  for (int rank = 0; rank < 2; rank++) {
    threads.emplace_back([&, rank] {
      status[rank] = [&]() -> Status {
        dist::TcpOptions o;
        o.rank = rank;
        o.world = 2;
        o.master_port = port;
        KEEL_ASSIGN_OR_RETURN(auto tcp, dist::TcpCommunicator::connect(o));
        KEEL_ASSIGN_OR_RETURN(auto backend, make_cuda_backend(rank));
        KEEL_ASSIGN_OR_RETURN(auto nccl, NcclCommunicator::create(tcp.get(), backend.get(), std::chrono::seconds(30)));
        KEEL_ASSIGN_OR_RETURN(Tensor t, backend->alloc(DType::kF32, 1, 1 << 20));
        KEEL_RETURN_IF_ERROR(nccl->barrier());
        if (rank == 1) {
          nccl->abort(io_error("exiting"));  // what the process's exit does: NCCL gone, sockets closed
          return Status();
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        const auto t0 = std::chrono::steady_clock::now();
        Status s = nccl->all_reduce_sum_device(t.data, 1 << 20, DType::kF32);
        if (s.ok()) s = nccl->synchronize();
        waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (s.ok()) return internal_error("the all-reduce finished without its peer");
        std::printf("[tp] survivor failed after %.3f s: %s\n", waited, s.message().c_str());
        return Status();
      }();
    });
  }
  for (auto& t : threads) t.join();
  for (auto& s : status) EXPECT_TRUE(s.ok()) << s.message();
  EXPECT_LT(waited, 5.0);
}

}  // namespace
}  // namespace keel::backend
