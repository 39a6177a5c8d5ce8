// `keel serve --tensor-parallel 2 --backend cpu` (and --pipeline-parallel): the launcher starts the rank processes
// (TCP communicators), rank 0 serves HTTP. They answer as one process does; SIGTERM stops them cleanly; a rank that is killed or
// stops answering fails the requests, turns /health unhealthy and ends the server with a non-zero exit instead
// of a hang; layouts that cannot work are refused before anything starts. The Cuda test answers with
// `--backend cuda` (one GPU per rank, NCCL) as the CPU ranks do; it skips with fewer than 2 GPUs.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <regex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "dist/tcp_communicator.h"
#include "gpus.h"
#include "keel_cli.h"
#include "keel_serve.h"

namespace {

using Clock = std::chrono::steady_clock;

using keel::test::body_of;
using keel::test::http;
using keel::test::Server;

std::string complete(int port, int max_tokens, const std::string& prompt = "Once upon a time") {
  const std::string body =
      nlohmann::json{{"model", "demo"}, {"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0}}.dump();
  return body_of(http(port, "POST", "/v1/completions", body));
}

// Four greedy completions at once, of 8 to 32 tokens: decode steps run at batch sizes 4, 3, 2 and 1 (on a GPU,
// replays of four captured graphs). Their texts, or the responses that were not JSON.
std::vector<std::string> complete_four(int port) {
  const char* prompts[] = {"Once upon a time", "The little dog", "In the morning", "She said"};
  std::vector<std::string> out(4);
  std::vector<std::thread> clients;
  for (int i = 0; i < 4; i++)
    clients.emplace_back([&, i] {
      const std::string body = complete(port, 8 * (i + 1), prompts[i]);
      const auto j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
      out[i] = j.is_discarded() ? "not JSON: " + body : j["choices"][0]["text"].get<std::string>();
    });
  for (auto& c : clients) c.join();
  return out;
}

// keel_device_allocations_after_warmup from rank 0's /metrics; -1 when absent.
int allocations_after_warmup(int port) {
  std::smatch m;
  const std::string text = body_of(http(port, "GET", "/metrics"));
  if (!std::regex_search(text, m, std::regex("keel_device_allocations_after_warmup (\\d+)"))) return -1;
  return std::stoi(m[1].str());
}

// One process's answers, then each layout's: the same texts, nothing allocated after warm-up, exit 0 on SIGTERM.
void ranks_answer_as_one_process(const std::string& backend, const std::vector<std::pair<std::string, size_t>>& layouts) {
  std::vector<std::string> want;
  {
    Server one("", "", backend);
    ASSERT_TRUE(one.ready()) << one.stderr_text();
    want = complete_four(one.port);
  }
  for (const std::string& text : want) ASSERT_FALSE(text.empty() || text.starts_with("not JSON: ")) << text;
  for (const auto& [flags, ranks] : layouts) {
    Server tp(flags, "", backend);
    ASSERT_TRUE(tp.ready()) << tp.stderr_text();
    EXPECT_EQ(tp.ranks().size(), ranks) << tp.stderr_text();
    const std::vector<std::string> got = complete_four(tp.port);
    if (backend == "cpu") {
      EXPECT_EQ(got, want) << flags;
    } else {
      // BF16 activations: TP=2 sums each layer's partial outputs in another order than one GPU, and a near tie
      // between two tokens can flip a later one. Each text must start as one GPU's does.
      ASSERT_EQ(got.size(), want.size());
      int equal = 0;
      for (size_t i = 0; i < got.size(); i++) {
        equal += got[i] == want[i];
        EXPECT_EQ(got[i].substr(0, 16), want[i].substr(0, 16)) << flags << ": " << got[i] << " vs " << want[i];
      }
      std::printf("[tp] %s %s: %d of %zu greedy texts equal one GPU's\n", backend.c_str(), flags.c_str(), equal,
                  got.size());
    }
    EXPECT_EQ(allocations_after_warmup(tp.port), 0) << flags;
    kill(tp.pid, SIGTERM);
    EXPECT_EQ(tp.wait(30), 0) << tp.stderr_text();
    EXPECT_NE(tp.stderr_text().find("keel: stopped"), std::string::npos) << tp.stderr_text();
  }
}

TEST(ServeTensorParallel, CpuRanksAnswerAsOneProcessAndStopCleanly) {
  ranks_answer_as_one_process(
      "cpu", {{"--tensor-parallel 2", 2}, {"--pipeline-parallel 2", 2}, {"--tensor-parallel 2 --pipeline-parallel 2", 4}});
}

// The demo model is BF16: on a GPU its activations are BF16 too, so TP=2's greedy texts must start as one GPU's
// (a near tie may flip a later token; the F32 goldens' tokens are compared exactly in parallel_cli_test.cpp).
TEST(ServeTensorParallel, CudaRanksAnswerAsOneGpuAndStopCleanly) {
  if (const int gpus = keel::test::visible_gpus(); gpus < 2)
    GTEST_SKIP() << "--tensor-parallel 2 on CUDA needs 2 GPUs (one per rank); " << gpus << " visible (nvidia-smi -L)";
  ranks_answer_as_one_process("cuda", {{"--tensor-parallel 2", 2}});
}

TEST(ServeTensorParallel, AKilledRankFailsTheServerInsteadOfHangingIt) {
  Server tp("--tensor-parallel 2");
  ASSERT_TRUE(tp.ready()) << tp.stderr_text();
  const std::vector<pid_t> ranks = tp.ranks();
  ASSERT_EQ(ranks.size(), 2u) << tp.stderr_text();
  kill(ranks[1], SIGKILL);
  // Idle, rank 0 finds out by its next heartbeat (one a second): /health turns unhealthy, then the group exits 1.
  bool unhealthy = false;
  const auto end = Clock::now() + std::chrono::seconds(10);
  while (!unhealthy && Clock::now() < end) {
    unhealthy = http(tp.port, "GET", "/health").find("\"unhealthy\"") != std::string::npos;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(unhealthy) << tp.stderr_text();
  const std::string refused = complete(tp.port, 4);
  if (!refused.empty()) {
    EXPECT_NE(refused.find("tensor-parallel group failed"), std::string::npos) << refused;
  }
  EXPECT_EQ(tp.wait(30), 1) << tp.stderr_text();
  const std::string err = tp.stderr_text();
  EXPECT_NE(err.find("rank 1 (pid " + std::to_string(ranks[1]) + ") was killed by signal 9"), std::string::npos) << err;
}

TEST(ServeTensorParallel, ARankThatStopsAnsweringTimesOutTheGroup) {
  Server tp("--tensor-parallel 2 --dist-timeout 2");
  ASSERT_TRUE(tp.ready()) << tp.stderr_text();
  const std::vector<pid_t> ranks = tp.ranks();
  ASSERT_EQ(ranks.size(), 2u) << tp.stderr_text();
  kill(ranks[1], SIGSTOP);  // alive, its sockets open, but silent
  const std::string answer = complete(tp.port, 8);
  EXPECT_NE(answer.find("timed out"), std::string::npos) << answer;
  EXPECT_EQ(tp.wait(30), 1) << tp.stderr_text();
}

// Ranks started by an outside launcher (torchrun style): RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT, the same
// command on every rank; rank 0 serves.
TEST(ServeTensorParallel, RanksStartedByAnotherLauncherFormTheGroupFromTheEnvironment) {
  const int master = keel::dist::free_port();
  auto env = [&](int rank) {
    return "RANK=" + std::to_string(rank) + " WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(master);
  };
  Server follower("--tensor-parallel 2", env(1));
  Server leader("--tensor-parallel 2", env(0));
  ASSERT_TRUE(leader.ready()) << leader.stderr_text() << follower.stderr_text();
  EXPECT_EQ(leader.stderr_text().find("launched"), std::string::npos) << "an outside launcher's rank launched ranks";
  const std::string got = nlohmann::json::parse(complete(leader.port, 8))["choices"][0]["text"];
  EXPECT_FALSE(got.empty());
  kill(leader.pid, SIGTERM);
  EXPECT_EQ(leader.wait(30), 0) << leader.stderr_text();
  EXPECT_EQ(follower.wait(30), 0) << follower.stderr_text();
}

TEST(ServeTensorParallel, LayoutsThatCannotWorkAreRefusedBeforeAnyRankStarts) {
  using keel::test::run_keel;
  auto r = run_keel("serve --backend cpu --tensor-parallel 3 --port 0");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--tensor-parallel 3 does not divide num_attention_heads=8"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("launched"), std::string::npos) << r.err;
  r = run_keel("serve --backend cpu --tensor-parallel 2 --hot-cache-max-size 64MB --port 0");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("not supported yet"), std::string::npos) << r.err;
}

}  // namespace
