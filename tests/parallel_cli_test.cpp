// `keel logits` and `keel generate` with --tensor-parallel / --pipeline-parallel: the launcher starts one process
// per rank, rank 0 drives the others with step plans and alone writes the .npy or prints the tokens, and every
// rank exits 0. The results must be one process's (within summation order) and transformers'.
//
// Each test runs with `--backend cpu` (ranks over TCP; in `make test`) and, as the Cuda/ instances, with
// `--backend cuda` (one GPU per rank, NCCL), which skip without enough GPUs. The two differ in the flag only.
// On the device: keel_e2e_test --gtest_filter='Cuda/*:ServeTensorParallel.Cuda*' (tools/device.sh tp).
#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <ostream>
#include <string>
#include <tuple>
#include <vector>

#include "base/test_util.h"
#include "env/env.h"
#include "format/npy.h"
#include "gpus.h"
#include "keel_cli.h"

namespace {

using keel::test::joined;

using keel::test::CliRun;
using keel::test::run_keel;

const std::string kModels = std::string(KEEL_SOURCE_DIR) + "/tests/golden/models/";

struct Golden {
  std::vector<int> tokens, greedy;
  bool f32 = false;  // the checkpoint's dtype: BF16 ones run with BF16 activations on a GPU
};

Golden golden(const std::string& model) {
  std::ifstream f(kModels + model + "/golden.json");
  const auto j = nlohmann::json::parse(f);
  Golden g;
  g.tokens = j["tokens"].get<std::vector<int>>();
  if (!j["greedy"].is_null()) g.greedy = j["greedy"].get<std::vector<int>>();
  g.f32 = j["dtype"] == "float32";
  return g;
}

struct Layout {
  int tp = 1, pp = 1;
  int world() const { return tp * pp; }
  std::string flags() const {
    return " --tensor-parallel " + std::to_string(tp) + " --pipeline-parallel " + std::to_string(pp);
  }
  std::string name() const {
    return (tp > 1 ? "tp" + std::to_string(tp) : "") + (pp > 1 ? "pp" + std::to_string(pp) : "");
  }
};

void PrintTo(const Layout& layout, std::ostream* os) { *os << layout.name(); }

// backend, golden model, layout
using Case = std::tuple<std::string, std::string, Layout>;

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  return std::get<1>(info.param) + "_" + std::get<2>(info.param).name();
}

// The families of the golden set: biases, tied embeddings with one KV head (replicated at TP=2), q/k norms, yarn
// rope, gemma's sandwich norms and soft-caps, a BF16 checkpoint, sparse MoE layers beside dense ones.
const auto kFamilies = ::testing::Values("llama3_v4", "qwen2_v4", "qwen2_tied", "qwen3", "qwen3_yarn_v4", "gemma3",
                                         "mistral_bf16", "qwen3_moe_sparse2_v4");
const auto kLayouts = ::testing::Values(Layout{2, 1}, Layout{1, 2}, Layout{2, 2});

// `keel <args> --backend B`, with the layout's flags when it has more than one rank; checks that the launcher
// started the ranks, over NCCL on a GPU. A run that hangs is stopped after 120 s (exit code 124).
CliRun keel_on(const std::string& backend, const std::string& args, const Layout& layout) {
  const bool group = layout.world() > 1;
  CliRun r = run_keel(args + " --backend " + backend + (group ? layout.flags() : ""), false, 120);
  if (r.exit_code != 0 || !group) return r;
  const std::string launched = "launched " + std::to_string(layout.world()) + " ranks";
  EXPECT_NE(r.err.find(launched), std::string::npos) << r.err;
  if (backend == "cuda" && layout.tp > 1) {
    EXPECT_NE(r.err.find("NCCL"), std::string::npos) << r.err;
  }
  return r;
}

// One process's run of `args`, once per test binary (the layouts of a model compare against the same baseline,
// which on a GPU saves a process start per case), with the logits it wrote to `npy`, if any (the file removed).
struct Baseline {
  CliRun run;
  std::vector<float> logits;
};

const Baseline& one_process(const std::string& backend, const std::string& args, const std::string& npy = "") {
  static std::map<std::string, Baseline> runs;
  const std::string key = backend + " " + args;
  auto it = runs.find(key);
  if (it != runs.end()) return it->second;
  Baseline b;
  b.run = keel_on(backend, args + npy, Layout{});
  if (!npy.empty()) {
    if (auto a = keel::format::read_npy(keel::env::Env::posix(), npy); a.ok()) b.logits = std::move(a->data);
    std::remove(npy.c_str());
  }
  return runs.emplace(key, std::move(b)).first->second;
}

class ParallelCli : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    const auto& [backend, model, layout] = GetParam();
    const int gpus = keel::test::visible_gpus();
    if (backend == "cuda" && gpus < layout.world())
      GTEST_SKIP() << layout.name() << " on CUDA needs " << layout.world() << " GPUs (one per rank); " << gpus
                   << " visible (nvidia-smi -L)";
  }
  // F32 math throughout: the CPU backend always, a GPU for an F32 checkpoint.
  bool f32(const Golden& g) const { return std::get<0>(GetParam()) == "cpu" || g.f32; }
};

class ParallelLogits : public ParallelCli {};

// Ranks sum partial results in another order than one process does: within 1e-5 of it, and within the single
// process's bound of transformers. BF16 activations on a GPU: 2e-2 and 3e-2.
TEST_P(ParallelLogits, MatchOneProcessAndTransformers) {
  const auto& [backend, model, layout] = GetParam();
  const Golden g = golden(model);
  const std::string out = "/tmp/keel_parallel_logits_" + std::to_string(::getpid()) + "_";
  const std::string args = "logits " + kModels + model + " --tokens \"" + joined(g.tokens) + "\" --out ";
  const Baseline& one = one_process(backend, args, out + "1.npy");
  ASSERT_EQ(one.run.exit_code, 0) << one.run.err;
  CliRun ranks = keel_on(backend, args + out + "n.npy", layout);
  ASSERT_EQ(ranks.exit_code, 0) << ranks.err;
  EXPECT_EQ(ranks.out, "");
  auto want = keel::format::read_npy(keel::env::Env::posix(), kModels + model + "/logits.npy");
  auto gotn = keel::format::read_npy(keel::env::Env::posix(), out + "n.npy");
  std::remove((out + "n.npy").c_str());
  ASSERT_TRUE(want.ok() && gotn.ok());
  ASSERT_EQ(gotn->shape, want->shape);
  ASSERT_EQ(one.logits.size(), want->data.size());
  const double vs_one = keel::relative_error(gotn->data, one.logits);
  const double vs_golden = keel::relative_error(gotn->data, want->data);
  std::printf("[tp] %s %-20s %-6s vs one process %.3g, vs transformers %.3g\n", backend.c_str(), model.c_str(),
              layout.name().c_str(), vs_one, vs_golden);
  EXPECT_LE(vs_one, f32(g) ? 1e-5 : 2e-2);
  EXPECT_LE(vs_golden, f32(g) ? 1e-4 : 3e-2);
}

class ParallelGenerate : public ParallelCli {};

// Greedy: vocab-parallel argmax on the ranks, the tokens of one process and of transformers. Seeded sampling:
// the gathered logits on rank 0, the same draws as one process. BF16 activations may flip near-ties, so only F32
// math is compared.
TEST_P(ParallelGenerate, GivesTheTokensOfOneProcess) {
  const auto& [backend, model, layout] = GetParam();
  const Golden g = golden(model);
  const std::string prompt = "generate " + kModels + model + " --tokens \"" + joined(g.tokens) + "\" --ids --ignore-eos";
  struct Sampling {
    std::string flags;
    bool greedy;
  };
  for (const Sampling& s : {Sampling{" --max-tokens 24 --temperature 0", true},
                            Sampling{" --max-tokens 16 --temperature 0.8 --seed 7", false}}) {
    const CliRun& one = one_process(backend, prompt + s.flags).run;
    ASSERT_EQ(one.exit_code, 0) << one.err;
    CliRun ranks = keel_on(backend, prompt + s.flags, layout);
    ASSERT_EQ(ranks.exit_code, 0) << ranks.err;
    std::printf("[tp] %s %-20s %-6s%s: %s", backend.c_str(), model.c_str(), layout.name().c_str(), s.flags.c_str(),
                ranks.out.c_str());
    if (!f32(g)) continue;
    EXPECT_EQ(ranks.out, one.out) << s.flags;
    if (s.greedy && !g.greedy.empty()) {
      EXPECT_EQ(ranks.out, joined(g.greedy) + "\n") << "transformers' greedy tokens";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Cpu, ParallelLogits, ::testing::Combine(::testing::Values("cpu"), kFamilies, kLayouts),
                         case_name);
INSTANTIATE_TEST_SUITE_P(Cuda, ParallelLogits, ::testing::Combine(::testing::Values("cuda"), kFamilies, kLayouts),
                         case_name);
INSTANTIATE_TEST_SUITE_P(Cpu, ParallelGenerate, ::testing::Combine(::testing::Values("cpu"), kFamilies, kLayouts),
                         case_name);
INSTANTIATE_TEST_SUITE_P(Cuda, ParallelGenerate, ::testing::Combine(::testing::Values("cuda"), kFamilies, kLayouts),
                         case_name);

// Checked against the model's shape and the GPUs before any rank starts; the message names the flag.
TEST(ParallelCliRefusal, LayoutsThatCannotWorkAreRefusedBeforeAnyRankStarts) {
  const std::string tokens = " --tokens \"1 2 3\"";
  CliRun r = run_keel("logits " + kModels + "llama3_v4" + tokens + " --out /tmp/never.npy --tensor-parallel 3");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--tensor-parallel 3 does not divide num_attention_heads=4"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("launched"), std::string::npos) << r.err;

  r = run_keel("generate " + kModels + "qwen2_tied" + tokens + " --tensor-parallel 2 --pipeline-parallel 3");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--pipeline-parallel 3 exceeds num_hidden_layers=2"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("launched"), std::string::npos) << r.err;

  r = run_keel("generate " + kModels + "gemma3_v4" + tokens + " --backend cuda --tensor-parallel 4 --pipeline-parallel 4");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--tensor-parallel 4 x --pipeline-parallel 4 needs 16 GPUs (one per rank)"), std::string::npos)
      << r.err;
  EXPECT_EQ(r.err.find("launched"), std::string::npos) << r.err;

  r = run_keel("logits " + kModels + "llama3_v4" + tokens + " --out /tmp/never.npy --tensor-parallel 0");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--tensor-parallel"), std::string::npos) << r.err;

  // Bad input too: the token ids are read before the launcher starts anything.
  r = run_keel("logits " + kModels + "llama3_v4 --tokens \"1 x\" --out /tmp/never.npy --tensor-parallel 2");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("token id 'x'"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("launched"), std::string::npos) << r.err;
}

// What only the loaded model can check fails rank 0 after the ranks started: the group ends, exit 1, no hang.
// A follower stuck after its work (on 2xH100 one hung tearing down decode graphs that held NCCL collectives): once
// rank 0 has finished cleanly the launcher kills it within seconds, warns, and the group's exit stays 0.
TEST(ParallelCliRefusal, AFollowerStuckAtExitIsKilledAfterRankZerosCleanFinish) {
  const std::string args = "generate " + kModels + "llama3_v4 --tokens \"1 2 3\" --max-tokens 4 --ids --temperature 0 "
                           "--tensor-parallel 2";
  CliRun r = run_keel(args, false, 60);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  ::setenv("KEEL_TEST_STUCK_AT_EXIT", "1", 1);
  const auto t1 = std::chrono::steady_clock::now();
  CliRun stuck = run_keel(args, false, 60);
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  ::unsetenv("KEEL_TEST_STUCK_AT_EXIT");
  EXPECT_EQ(stuck.exit_code, 0) << stuck.err;
  EXPECT_EQ(stuck.out, r.out);
  EXPECT_NE(stuck.err.find("rank 1"), std::string::npos) << stuck.err;
  EXPECT_NE(stuck.err.find("did not exit within 5 s of rank 0's clean finish"), std::string::npos) << stuck.err;
  EXPECT_LT(waited, 30.0);
}

TEST(ParallelCliRefusal, InputTheModelRefusesEndsTheGroupWithExitOne) {
  CliRun r = run_keel("generate " + kModels + "llama3_v4 --tokens \"1 2 999\" --ids --tensor-parallel 2");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("token id 999 is outside the vocabulary"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
  r = run_keel("generate " + kModels + "llama3_v4 --tokens \"1 2\" --max-tokens 1000 --ids --tensor-parallel 2");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("context"), std::string::npos) << r.err;
}

}  // namespace
