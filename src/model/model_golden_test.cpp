// The engine against transformers: tiny random models of every family (tests/golden/gen.py) must give the
// reference logits (relative error <= 1e-4 in fp32) and the same 24 greedy tokens.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>

#include "backend/ops.h"
#include "base/test_util.h"
#include "engine/engine.h"
#include "format/npy.h"
#include "model/model.h"

namespace keel::model {

namespace {

const std::string kGoldenDir = std::string(KEEL_SOURCE_DIR) + "/tests/golden/models/";

struct Golden {
  std::vector<int32_t> tokens;
  std::vector<int32_t> greedy;
  format::NpyArray logits;
};

Golden read_golden(const std::string& name) {
  Golden g;
  auto text = env::Env::posix()->read_file(kGoldenDir + name + "/golden.json");
  EXPECT_TRUE(text.ok()) << text.status().message();
  auto j = nlohmann::json::parse(*text);
  g.tokens = j["tokens"].get<std::vector<int32_t>>();
  if (!j["greedy"].is_null()) g.greedy = j["greedy"].get<std::vector<int32_t>>();
  auto npy = format::read_npy(env::Env::posix(), kGoldenDir + name + "/logits.npy");
  EXPECT_TRUE(npy.ok()) << npy.status().message();
  g.logits = std::move(*npy);
  return g;
}

class GoldenModel : public ::testing::TestWithParam<std::string> {};

// The hybrid families' goldens come from tests/golden/gen_hybrid.py, which needs a transformers with Qwen3-Next
// and Qwen3.5: until it has run, their directories are absent and their cases skip.
bool absent(const std::string& name) { return !env::Env::posix()->is_directory(kGoldenDir + name); }

TEST_P(GoldenModel, LogitsMatchTransformers) {
  const std::string name = GetParam();
  if (absent(name)) GTEST_SKIP() << kGoldenDir + name << " is absent: run tests/golden/gen_hybrid.py";
  Golden g = read_golden(name);
  auto backend = backend::make_cpu_backend();
  LoadOptions options;
  options.max_batch_tokens = 64;
  options.kv_blocks = 8;
  auto m = Model::load(env::Env::posix(), kGoldenDir + name, backend.get(), options);
  ASSERT_TRUE(m.ok()) << m.status().message();
  auto logits = engine::all_logits(**m, g.tokens);
  ASSERT_TRUE(logits.ok()) << logits.status().message();
  ASSERT_EQ(logits->size(), g.logits.data.size());
  const double err = relative_error(*logits, g.logits.data);
  std::printf("[golden] %-22s logits rel. error %.3g\n", name.c_str(), err);
  EXPECT_LE(err, 1e-4);
}

TEST_P(GoldenModel, GreedyTokensMatchTransformers) {
  const std::string name = GetParam();
  if (absent(name)) GTEST_SKIP() << kGoldenDir + name << " is absent: run tests/golden/gen_hybrid.py";
  Golden g = read_golden(name);
  if (g.greedy.empty()) GTEST_SKIP() << name << " has no greedy reference (dynamic rope depends on cache history)";
  auto backend = backend::make_cpu_backend();
  LoadOptions options;
  options.max_batch_tokens = 64;
  options.kv_blocks = 8;
  auto m = Model::load(env::Env::posix(), kGoldenDir + name, backend.get(), options);
  ASSERT_TRUE(m.ok()) << m.status().message();
  engine::Engine engine(m->get(), engine::EngineOptions{});
  engine::Request r;
  r.prompt = g.tokens;
  r.max_tokens = static_cast<int>(g.greedy.size());
  r.sampling.temperature = 0;
  r.ignore_eos = true;
  auto out = engine.generate(r);
  ASSERT_TRUE(out.ok()) << out.status().message();
  EXPECT_EQ(*out, g.greedy);
}

INSTANTIATE_TEST_SUITE_P(Families, GoldenModel,
                         ::testing::Values("llama3_v4", "llama_linear_v5", "llama_dynamic", "llama_sharded_f16",
                                           "mistral_bf16", "qwen2_tied", "qwen2_v4", "qwen3", "qwen3_yarn_v4",
                                           "qwen3_moe", "qwen3_moe_sparse2_v4", "gemma3", "gemma3_v4"));
// 80 tokens, more than max_batch_tokens: all_logits runs them as two forwards, the recurrent state carried.
INSTANTIATE_TEST_SUITE_P(Hybrid, GoldenModel, ::testing::Values("qwen3_next", "qwen3_5", "qwen3_5_moe"));

}  // namespace
}  // namespace keel::model
