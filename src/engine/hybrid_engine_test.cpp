// The engine carrying a hybrid model's recurrent state (Qwen3-Next shape, random weights on the CPU oracle):
// whatever the batching, chunking or preemption, each request's greedy tokens are those it gets alone; prefix
// caching stays off (a cached prefix would lack its state); nothing is allocated after warm-up.
#include <gtest/gtest.h>

#include <future>
#include <memory>
#include <set>
#include <vector>

#include "backend/ops.h"
#include "engine/engine.h"
#include "model/model.h"

namespace keel::engine {
namespace {

// 3 linear-attention layers and 1 gated full-attention layer; MoE with a shared expert except layer 1 (dense).
const char* kConfig = R"({
  "architectures": ["Qwen3NextForCausalLM"], "vocab_size": 256, "hidden_size": 64, "intermediate_size": 96,
  "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
  "max_position_embeddings": 256, "rms_norm_eps": 1e-6, "linear_num_key_heads": 2, "linear_num_value_heads": 4,
  "linear_key_head_dim": 16, "linear_value_head_dim": 8, "linear_conv_kernel_dim": 4, "num_experts": 4,
  "num_experts_per_tok": 2, "moe_intermediate_size": 32, "shared_expert_intermediate_size": 48,
  "mlp_only_layers": [1], "partial_rotary_factor": 0.5, "rope_theta": 10000.0, "eos_token_id": 2})";

struct Loaded {
  std::unique_ptr<backend::Backend> backend;
  std::unique_ptr<model::Model> model;
};

Loaded load(int kv_blocks, int max_batch_tokens = 64, int state_slots = 0) {
  auto config = model::parse_config(kConfig, "config.json");
  EXPECT_TRUE(config.ok()) << config.status().message();
  Loaded l;
  l.backend = backend::make_cpu_backend();
  model::LoadOptions o;
  o.max_batch_tokens = max_batch_tokens;
  o.kv_blocks = kv_blocks;
  o.block_size = 4;
  o.state_slots = state_slots;
  auto m = model::Model::synthetic(*config, l.backend.get(), o, 99);
  EXPECT_TRUE(m.ok()) << m.status().message();
  l.model = std::move(*m);
  return l;
}

std::vector<int32_t> prompt(int n, int salt) {
  std::vector<int32_t> p;
  for (int i = 0; i < n; i++) p.push_back((i * 37 + salt * 11 + 3) % 256);
  return p;
}

Request greedy(std::vector<int32_t> p, int max_tokens) {
  Request r;
  r.prompt = std::move(p);
  r.max_tokens = max_tokens;
  r.sampling.temperature = 0;
  r.ignore_eos = true;
  return r;
}

std::vector<int32_t> alone(const std::vector<int32_t>& p, int max_tokens) {
  Loaded l = load(64);
  Engine engine(l.model.get(), EngineOptions{});
  auto out = engine.generate(greedy(p, max_tokens));
  EXPECT_TRUE(out.ok()) << out.status().message();
  return out.ok() ? *out : std::vector<int32_t>{};
}

// Runs all prompts at once, each on its own thread, and returns their tokens.
std::vector<std::vector<int32_t>> together(Engine& engine, const std::vector<std::vector<int32_t>>& prompts,
                                           int max_tokens) {
  std::vector<std::future<Result<std::vector<int32_t>>>> runs;
  for (auto& p : prompts)
    runs.push_back(std::async(std::launch::async, [&engine, p, max_tokens] { return engine.generate(greedy(p, max_tokens)); }));
  std::vector<std::vector<int32_t>> out;
  for (auto& r : runs) {
    auto tokens = r.get();
    EXPECT_TRUE(tokens.ok()) << tokens.status().message();
    out.push_back(tokens.ok() ? *tokens : std::vector<int32_t>{});
  }
  return out;
}

TEST(HybridEngine, ChunkedPrefillGivesTheLogitsOfOneForward) {
  Loaded whole = load(64, 64), chunked = load(64, 7);  // the same seed: the same weights
  const std::vector<int32_t> p = prompt(40, 1);
  auto a = all_logits(*whole.model, p), b = all_logits(*chunked.model, p);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);  // row by row the same operations: bit for bit
}

TEST(HybridEngine, BatchedAndChunkedRequestsEqualEachAlone) {
  const std::vector<std::vector<int32_t>> prompts = {prompt(23, 1), prompt(9, 2), prompt(31, 3), prompt(14, 4)};
  std::vector<std::vector<int32_t>> want;
  for (auto& p : prompts) want.push_back(alone(p, 12));
  // Random weights still give text that depends on the prompt: equality below is not that of constants.
  EXPECT_NE(want[0], want[1]);
  EXPECT_GT(std::set<int32_t>(want[2].begin(), want[2].end()).size(), 2u);
  Loaded l = load(64);
  EngineOptions o;
  o.max_num_batched_tokens = 8;  // prefills cut into chunks of 8, mixed with the others' decodes
  Engine engine(l.model.get(), o);
  EXPECT_EQ(together(engine, prompts, 12), want);
  EXPECT_EQ(engine.stats().allocations_after_warmup, 0u);
}

TEST(HybridEngine, PreemptedRequestsRecomputeToTheSameTokens) {
  const std::vector<std::vector<int32_t>> prompts = {prompt(20, 5), prompt(18, 6), prompt(22, 7)};
  std::vector<std::vector<int32_t>> want;
  for (auto& p : prompts) want.push_back(alone(p, 16));
  Loaded l = load(/*kv_blocks=*/14);  // 56 tokens: three sequences of ~36 cannot all keep their KV
  Engine engine(l.model.get(), EngineOptions{});
  EXPECT_EQ(together(engine, prompts, 16), want);
  EXPECT_GT(engine.stats().preemptions, 0u);
}

TEST(HybridEngine, RunningSequencesAreCappedByTheStateSlots) {
  const std::vector<std::vector<int32_t>> prompts = {prompt(10, 8), prompt(11, 9), prompt(12, 10)};
  std::vector<std::vector<int32_t>> want;
  for (auto& p : prompts) want.push_back(alone(p, 6));
  Loaded l = load(64, 64, /*state_slots=*/2);
  ASSERT_EQ(l.model->recurrent_state_slots(), 2);
  EngineOptions o;
  o.max_num_seqs = 8;  // more than the pool: the third request waits for a slot
  Engine engine(l.model.get(), o);
  EXPECT_EQ(together(engine, prompts, 6), want);
}

TEST(HybridEngine, PrefixCachingIsOffAndARepeatedPromptIsComputedAgain) {
  const std::vector<int32_t> p = prompt(33, 11);
  Loaded l = load(64);
  Engine engine(l.model.get(), EngineOptions{});  // prefix_caching defaults to on
  auto first = engine.generate(greedy(p, 8));
  auto second = engine.generate(greedy(p, 8));
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(*first, *second);
  EXPECT_EQ(engine.stats().prefix_cache_hit_blocks, 0u);
  EXPECT_EQ(engine.stats().kv_blocks_cached, 0);
}

}  // namespace
}  // namespace keel::engine
