// The engine against single-sequence generation on a golden model: batching, preemption and cancellation
// must never change a greedy answer or leak a block.
#include "engine/engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <future>

#include "engine/engine_test_util.h"
#include "env/fault_env.h"

namespace keel::engine {

namespace {

using namespace keel::engine::testing;

std::vector<int32_t> concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace

TEST(Engine, ConcurrentGreedyRequestsEqualEachAlone) {
  const std::vector<std::vector<int32_t>> prompts = {prompt(30, 1), prompt(5, 2), prompt(17, 3), prompt(1, 4)};
  Loaded l = load(64);
  EngineOptions o;
  o.max_num_batched_tokens = 16;  // forces chunked prefill beside decodes
  Engine engine(l.model.get(), o);
  std::vector<Collector> c(prompts.size());
  for (size_t i = 0; i < prompts.size(); i++) ASSERT_TRUE(engine.submit(greedy(prompts[i], 12), c[i].callback()).ok());
  for (size_t i = 0; i < prompts.size(); i++) {
    ASSERT_TRUE(c[i].wait());
    EXPECT_EQ(c[i].tokens, alone(prompts[i], 12)) << "request " << i;
    EXPECT_EQ(c[i].finish, FinishReason::kLength);
    EXPECT_EQ(c[i].prompt_tokens, static_cast<int>(prompts[i].size()));
    EXPECT_EQ(c[i].completion_tokens, 12);
  }
  const EngineStats st = engine.stats();
  EXPECT_EQ(st.kv_blocks_used, 0);
  // Every prompt token computed once, and every generated token but the last fed back.
  EXPECT_EQ(st.batch_tokens, 30u + 5 + 17 + 1 + 4 * 11);
  EXPECT_GT(st.forward_seconds, 0);
  EXPECT_GE(st.step_seconds, st.forward_seconds);
}

// Step timings come from EngineOptions::env's clock: with a clock that moves 1 ms at each reading, every step
// reads it four times (step start, forward start, forward end, step end), so a step is 3 ms and its forward 1 ms.
TEST(Engine, StepTimingsAreReadFromTheEnvClock) {
  Loaded l = load(64);
  env::FaultEnv env(env::Env::posix());
  env.use_manual_clock(1'000'000, 1'000);
  EngineOptions o;
  o.env = &env;
  Engine engine(l.model.get(), o);
  Collector c;
  ASSERT_TRUE(engine.submit(greedy(prompt(3, 6), 5), c.callback()).ok());
  ASSERT_TRUE(c.wait());
  const EngineStats st = engine.stats();
  ASSERT_GT(st.steps, 0u);
  EXPECT_NEAR(st.forward_seconds, 1e-3 * static_cast<double>(st.steps), 1e-9);
  EXPECT_NEAR(st.step_seconds, 3e-3 * static_cast<double>(st.steps), 1e-9);
}

// A draw is numbered by the tokens its sequence has generated: batching (device draws beside other rows, or host
// draws when a penalised request joins the step) never changes a seeded request's tokens.
TEST(Engine, ASeededSampledRequestDrawsTheSameTokensAloneAndInABatch) {
  Request r = greedy(prompt(9, 8), 12);
  r.sampling.temperature = 1.0f;
  r.sampling.top_p = 0.95f;
  r.sampling.seed = 1234;
  std::vector<int32_t> solo;
  {
    Loaded l = load(64);
    Engine engine(l.model.get(), EngineOptions{});
    Collector c;
    ASSERT_TRUE(engine.submit(r, c.callback()).ok());
    ASSERT_TRUE(c.wait());
    solo = c.tokens;
  }
  ASSERT_EQ(solo.size(), 12u);
  EXPECT_NE(solo, alone(r.prompt, 12));  // sampled, not greedy

  Request other = r, penalised = r;
  other.prompt = prompt(20, 9);
  other.sampling.seed = 5;
  other.sampling.top_k = 20;
  penalised.prompt = prompt(4, 10);
  penalised.sampling.presence_penalty = 0.5f;
  penalised.max_tokens = 5;  // the batch's later steps draw on the device, its first on the host
  Loaded l = load(64);
  EngineOptions o;
  o.max_num_batched_tokens = 16;  // chunked prefill beside the decodes
  Engine engine(l.model.get(), o);
  Collector c[4];
  ASSERT_TRUE(engine.submit(greedy(prompt(13, 11), 12), c[0].callback()).ok());
  ASSERT_TRUE(engine.submit(other, c[1].callback()).ok());
  ASSERT_TRUE(engine.submit(penalised, c[2].callback()).ok());
  ASSERT_TRUE(engine.submit(r, c[3].callback()).ok());
  for (auto& x : c) ASSERT_TRUE(x.wait());
  EXPECT_EQ(c[3].tokens, solo);

  // A logit_bias of 0 sends the request through the host path (TokenChooser::choose on the step's logits): the
  // same tokens.
  Loaded fresh = load(64);
  Engine host(fresh.model.get(), EngineOptions{});
  Request biased = r;
  biased.sampling.logit_bias = {{0, 0.0f}};
  EXPECT_EQ(*host.generate(biased), solo);
}

TEST(Engine, AStrongLogitBiasForcesItsTokenOnEveryStep) {
  Loaded l = load(64);
  Engine engine(l.model.get(), EngineOptions{});
  Request r = greedy(prompt(7, 3), 6);
  const int32_t unlikely = alone(r.prompt, 1)[0] == 201 ? 202 : 201;
  r.sampling.logit_bias = {{unlikely, 100.0f}};
  auto out = engine.generate(r);
  ASSERT_TRUE(out.ok()) << out.status().message();
  EXPECT_EQ(*out, std::vector<int32_t>(6, unlikely));
  r.sampling.temperature = 1.0f;
  r.sampling.seed = 3;
  EXPECT_EQ(*engine.generate(r), std::vector<int32_t>(6, unlikely));
  r.sampling.logit_bias = {{300, 1.0f}};  // the model's vocabulary is 256 ids
  auto refused = engine.generate(r);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().message(), "logit_bias: token id 300 is outside the vocabulary [0, 256)");
}

TEST(Engine, GenerateHandsEachTokenToTheCallerAndStopsWhenItSaysSo) {
  Loaded l = load(64);
  Engine engine(l.model.get(), EngineOptions{});
  const std::vector<int32_t> want = alone(prompt(9, 4), 10);
  std::vector<int32_t> seen;
  auto out = engine.generate(greedy(prompt(9, 4), 10), [&](int32_t t) {
    seen.push_back(t);
    return seen.size() < 4;
  });
  ASSERT_TRUE(out.ok()) << out.status().message();
  EXPECT_EQ(seen, std::vector<int32_t>(want.begin(), want.begin() + 4));
  EXPECT_EQ(*out, seen);
  for (int i = 0; i < 100 && engine.stats().kv_blocks_used != 0; i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(engine.stats().kv_blocks_used, 0);
}

TEST(Engine, PreemptionUnderAPoolTooSmallForAllLosesNothing) {
  const std::vector<std::vector<int32_t>> prompts = {prompt(20, 5), prompt(20, 6), prompt(20, 7)};
  Loaded l = load(/*kv_blocks=*/12, /*block_size=*/4);  // 48 slots; three sequences need 3 x 36
  EngineOptions o;
  o.max_num_batched_tokens = 64;
  Engine engine(l.model.get(), o);
  std::vector<Collector> c(prompts.size());
  for (size_t i = 0; i < prompts.size(); i++) ASSERT_TRUE(engine.submit(greedy(prompts[i], 16), c[i].callback()).ok());
  for (size_t i = 0; i < prompts.size(); i++) {
    ASSERT_TRUE(c[i].wait());
    EXPECT_EQ(c[i].tokens, alone(prompts[i], 16)) << "request " << i;
  }
  EXPECT_GT(engine.stats().preemptions, 0u);
  EXPECT_EQ(engine.stats().kv_blocks_used, 0);
}

TEST(Engine, CancelFreesBlocksAndEndsWithCancelled) {
  Loaded l = load(64);
  Engine engine(l.model.get(), EngineOptions{});
  Collector c;
  std::promise<void> first;
  bool got_first = false;
  auto cb = c.callback();
  auto id = engine.submit(greedy(prompt(10, 9), 200), [&](const Event& e) {
    if (!got_first) {
      got_first = true;
      first.set_value();
    }
    cb(e);
  });
  ASSERT_TRUE(id.ok());
  first.get_future().wait();
  engine.cancel(*id);
  ASSERT_TRUE(c.wait());
  EXPECT_EQ(c.finish, FinishReason::kCancelled);
  EXPECT_LT(c.tokens.size(), 200u);
  for (int i = 0; i < 100 && engine.stats().kv_blocks_used != 0; i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(engine.stats().kv_blocks_used, 0);
}

TEST(Engine, ContextGuardRefusesBeforeQueueingWithTheNumbers) {
  Loaded l = load(64);
  Engine engine(l.model.get(), EngineOptions{});
  auto r = engine.submit(greedy(prompt(200, 1), 100), [](const Event&) {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("maximum context length is 256 tokens"), std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find("300 tokens (200 in the prompt, 100 for the completion)"), std::string::npos);
  // More than the KV pool (64 blocks x 4 = 256 tokens) can ever hold is refused too.
  Loaded small = load(8);
  Engine e2(small.model.get(), EngineOptions{});
  auto r2 = e2.submit(greedy(prompt(30, 1), 10), [](const Event&) {});
  ASSERT_FALSE(r2.ok());
  EXPECT_NE(r2.status().message().find("at most 32 tokens"), std::string::npos) << r2.status().message();
}

TEST(Engine, StopTokenEndsWithStop) {
  const auto p = prompt(12, 3);
  const auto expected = alone(p, 8);
  Loaded l = load(64);
  Engine engine(l.model.get(), EngineOptions{});
  Collector c;
  Request r = greedy(p, 8);
  r.stop_token_ids = {expected[2]};
  ASSERT_TRUE(engine.submit(r, c.callback()).ok());
  ASSERT_TRUE(c.wait());
  EXPECT_EQ(c.finish, FinishReason::kStop);
  // Ends at the first occurrence of the stop token.
  size_t first = std::find(expected.begin(), expected.end(), expected[2]) - expected.begin();
  EXPECT_EQ(c.tokens, std::vector<int32_t>(expected.begin(), expected.begin() + first + 1));
}

TEST(Engine, LogprobsAreNormalisedAndRankTheChosenToken) {
  Loaded l = load(64);
  Engine engine(l.model.get(), EngineOptions{});
  std::vector<Event> events;
  std::promise<void> done;
  Request r = greedy(prompt(6, 2), 3);
  r.top_logprobs = 5;
  ASSERT_TRUE(engine.submit(r, [&](const Event& e) {
    events.push_back(e);
    if (e.finish != FinishReason::kNone) done.set_value();
  }).ok());
  done.get_future().wait();
  ASSERT_EQ(events.size(), 3u);
  for (auto& e : events) {
    ASSERT_EQ(e.top.size(), 5u);
    EXPECT_EQ(e.top[0].token, e.token);  // greedy picks the most likely
    EXPECT_LE(e.chosen.logprob, 0.0f);
    EXPECT_FLOAT_EQ(e.chosen.logprob, e.top[0].logprob);
    for (size_t i = 1; i < e.top.size(); i++) EXPECT_LE(e.top[i].logprob, e.top[i - 1].logprob);
  }
}

TEST(Engine, DrainRefusesNewRequests) {
  Loaded l = load(64);
  Engine engine(l.model.get(), EngineOptions{});
  engine.drain();
  auto r = engine.submit(greedy(prompt(3, 1), 2), [](const Event&) {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kResourceExhausted);
}

TEST(EnginePrefixCache, ASharedPrefixIsReusedAndGivesTheSameGreedyTokens) {
  const std::vector<int32_t> first = prompt(22, 1);
  // Shares the first 18 tokens (4 full blocks of 4) with `first`.
  const std::vector<int32_t> second = concat(std::vector<int32_t>(first.begin(), first.begin() + 18), prompt(5, 8));
  Loaded l = load(64, /*block_size=*/4);
  Engine engine(l.model.get(), EngineOptions{});

  Collector a = run_one(engine, first, 8);
  EXPECT_EQ(a.tokens, alone(first, 8));
  EXPECT_EQ(a.cached_tokens, 0);

  Collector b = run_one(engine, second, 8);
  EXPECT_EQ(b.cached_tokens, 16);
  EXPECT_EQ(b.tokens, alone(second, 8));

  // The same prompt again: all but the block holding its last token (22 = 5 full blocks + 2).
  Collector c = run_one(engine, first, 8);
  EXPECT_EQ(c.cached_tokens, 20);
  EXPECT_EQ(c.tokens, a.tokens);

  // A prompt that is exactly 6 full blocks: the last block is recomputed for the last token's logits.
  const std::vector<int32_t> whole = concat(first, {a.tokens[0], a.tokens[1]});
  Collector d = run_one(engine, whole, 4);
  EXPECT_EQ(d.cached_tokens, 20);
  EXPECT_EQ(d.tokens, alone(whole, 4));

  EngineStats st = engine.stats();
  EXPECT_EQ(st.prefix_cache_hit_blocks, 4u + 5u + 5u);
  EXPECT_EQ(st.kv_blocks_used, 0);
  EXPECT_GT(st.kv_blocks_cached, 0);
  EXPECT_EQ(st.kv_block_size, 4);
  EXPECT_GT(st.kv_block_bytes, 0u);
}

TEST(EnginePrefixCache, EvictionUnderASmallPoolLosesNothing) {
  // 12 blocks of 4; each request needs up to 9. Prompts share prefixes, so cached blocks are reused,
  // evicted for others and recomputed, concurrently with preemption.
  const std::vector<int32_t> base = prompt(12, 4);
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 6; i++) prompts.push_back(concat(i % 2 ? base : prompt(12, 9), prompt(8, i)));
  std::vector<std::vector<int32_t>> expected;
  for (auto& p : prompts) expected.push_back(alone(p, 16));

  Loaded l = load(/*kv_blocks=*/12, /*block_size=*/4);
  Engine engine(l.model.get(), EngineOptions{});
  for (int round = 0; round < 2; round++) {
    std::vector<Collector> c(prompts.size());
    for (size_t i = 0; i < prompts.size(); i++)
      ASSERT_TRUE(engine.submit(greedy(prompts[i], 16), c[i].callback()).ok());
    for (size_t i = 0; i < prompts.size(); i++) {
      ASSERT_TRUE(c[i].wait());
      EXPECT_EQ(c[i].tokens, expected[i]) << "round " << round << " request " << i;
    }
  }
  EngineStats st = engine.stats();
  EXPECT_GT(st.prefix_cache_hit_blocks, 0u);
  EXPECT_GT(st.prefix_cache_evictions, 0u);
  EXPECT_EQ(st.kv_blocks_used, 0);
  EXPECT_LE(st.kv_blocks_cached, 12);
}

TEST(EnginePrefixCache, OffReusesNothing) {
  const std::vector<int32_t> p = prompt(20, 2);
  Loaded l = load(64);
  EngineOptions o;
  o.prefix_caching = false;
  Engine engine(l.model.get(), o);
  Collector a = run_one(engine, p, 4);
  Collector b = run_one(engine, p, 4);
  EXPECT_EQ(b.cached_tokens, 0);
  EXPECT_EQ(b.tokens, a.tokens);
  EXPECT_EQ(engine.stats().kv_blocks_cached, 0);
  EXPECT_EQ(engine.stats().prefix_cache_hit_blocks, 0u);
}

TEST(EnginePrefixCache, APrefixEvictedFromTheDeviceIsServedFromTheHotTier) {
  const std::vector<int32_t> first = prompt(21, 11);
  const std::vector<int32_t> other = prompt(24, 12);
  Loaded l = load(/*kv_blocks=*/8, /*block_size=*/4);  // 32 slots: `other` pushes `first` out
  auto hot = cache::HotTier::create(64 * kv_block_bytes(*l.model), kv_block_bytes(*l.model));
  ASSERT_TRUE(hot.ok());
  EngineOptions o;
  o.hot_tier = hot->get();
  Engine engine(l.model.get(), o);
  Collector a = run_one(engine, first, 4);
  Collector b = run_one(engine, other, 6);
  EXPECT_GT(engine.stats().hot_cache_stores, 0u);
  Collector c = run_one(engine, first, 4);
  EXPECT_EQ(c.cached_tokens, 20);
  EXPECT_EQ(c.tokens, a.tokens);
  EXPECT_EQ(c.tokens, alone(first, 4));
  EXPECT_EQ(b.tokens, alone(other, 6));
  EngineStats st = engine.stats();
  EXPECT_GT(st.hot_cache_hit_blocks, 0u);
  EXPECT_LE(st.hot_cache_blocks, st.hot_cache_capacity_blocks);
  EXPECT_EQ(st.kv_blocks_used, 0);
}

TEST(EnginePrefixCache, ASmallHotTierStaysWithinItsCapAndLosesNothing) {
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 5; i++) prompts.push_back(prompt(16 + i, 20 + i % 3));
  std::vector<std::vector<int32_t>> expected;
  for (auto& p : prompts) expected.push_back(alone(p, 6));
  Loaded l = load(/*kv_blocks=*/10, /*block_size=*/4);
  auto hot = cache::HotTier::create(3 * kv_block_bytes(*l.model), kv_block_bytes(*l.model));
  ASSERT_TRUE(hot.ok());
  EngineOptions o;
  o.hot_tier = hot->get();
  Engine engine(l.model.get(), o);
  for (int round = 0; round < 3; round++) {
    for (size_t i = 0; i < prompts.size(); i++) {
      Collector c = run_one(engine, prompts[i], 6);
      EXPECT_EQ(c.tokens, expected[i]) << "round " << round << " request " << i;
      EXPECT_LE((*hot)->num_blocks(), 3u);
      EXPECT_LE((*hot)->used_bytes(), (*hot)->max_bytes());
    }
  }
  EXPECT_GT(engine.stats().hot_cache_evictions, 0u);
  EXPECT_EQ(engine.stats().kv_blocks_used, 0);
}

}  // namespace keel::engine

namespace keel::engine {

using namespace keel::engine::testing;

// n > 1 as the server submits it: the first request, then siblings with prefill_after. The prompt is computed
// once in full; each sibling computes only what follows the shared full blocks, and answers as if alone.
TEST(EnginePrefixCache, SiblingsComputeThePromptOnceAndAnswerAsIfAlone) {
  const std::vector<int32_t> p = prompt(22, 3);  // 5 full blocks of 4 and 2 tokens
  Loaded l = load(64, /*block_size=*/4);
  Engine engine(l.model.get(), EngineOptions{});
  constexpr int kSiblings = 4;
  Collector c[kSiblings];
  auto first = engine.submit(greedy(p, 6), c[0].callback());
  ASSERT_TRUE(first.ok());
  for (int i = 1; i < kSiblings; i++) {
    Request r = greedy(p, 6);
    r.prefill_after = *first;
    ASSERT_TRUE(engine.submit(std::move(r), c[i].callback()).ok());
  }
  for (auto& one : c) ASSERT_TRUE(one.wait());
  const std::vector<int32_t> reference = alone(p, 6);
  for (int i = 0; i < kSiblings; i++) EXPECT_EQ(c[i].tokens, reference) << "sibling " << i;
  EXPECT_EQ(c[0].cached_tokens, 0);
  for (int i = 1; i < kSiblings; i++) EXPECT_EQ(c[i].cached_tokens, 20);
  // 22 + 3 * 2 prompt tokens computed, against 4 * 22 = 88 without sharing.
  EXPECT_EQ(engine.stats().prompt_tokens, 22u + 3u * 2u);
  EXPECT_EQ(engine.stats().prefix_cache_hit_blocks, 3u * 5u);
}

TEST(EnginePrefixCache, SampledSiblingsWithTheirOwnSeedsDrawTheirOwnTokens) {
  const std::vector<int32_t> p = prompt(9, 4);
  Loaded l = load(64, /*block_size=*/4);
  Engine engine(l.model.get(), EngineOptions{});
  constexpr int kSiblings = 3;
  Collector c[kSiblings];
  uint64_t first = 0;
  for (int i = 0; i < kSiblings; i++) {
    Request r = greedy(p, 12);
    r.sampling.temperature = 1.5f;
    r.sampling.seed = 100 + i;
    r.prefill_after = first;
    auto id = engine.submit(std::move(r), c[i].callback());
    ASSERT_TRUE(id.ok());
    if (i == 0) first = *id;
  }
  for (auto& one : c) ASSERT_TRUE(one.wait());
  EXPECT_NE(c[0].tokens, c[1].tokens);
  EXPECT_NE(c[1].tokens, c[2].tokens);
  // Each as its seed draws alone.
  Request again = greedy(p, 12);
  again.sampling.temperature = 1.5f;
  again.sampling.seed = 101;
  EXPECT_EQ(*engine.generate(std::move(again)), c[1].tokens);
}

}  // namespace keel::engine

namespace keel::engine {

using namespace keel::engine::testing;

// Prompt logprobs against the oracle: the model's logits over the prompt computed independently (all_logits, a KV
// pool of its own), log-softmaxed here. The prompt spans two prefill chunks, and a second request for a prompt
// the prefix cache holds still computes (and reports) every position.
TEST(Engine, PromptLogprobsEqualTheLogSoftmaxOfTheModelsOwnLogits) {
  const std::vector<int32_t> p = prompt(100, 6);  // two chunks of the 64-token step budget
  const int kTop = 3;
  Loaded oracle_model = load(64);
  auto logits = all_logits(*oracle_model.model, p);
  ASSERT_TRUE(logits.ok()) << logits.status().message();
  const int vocab = oracle_model.model->config().vocab_size;

  Loaded l = load(64);
  Engine engine(l.model.get(), EngineOptions{});
  for (int round = 0; round < 2; round++) {
    std::vector<Event> events;
    std::promise<void> done;
    Request r = greedy(p, 2);
    r.prompt_logprobs = kTop;
    ASSERT_TRUE(engine.submit(r, [&](const Event& e) {
      events.push_back(e);
      if (e.finish != FinishReason::kNone) done.set_value();
    }).ok());
    done.get_future().wait();
    ASSERT_EQ(events.size(), 2u);
    EXPECT_TRUE(events[1].prompt_logprobs.empty()) << "handed out once, with the first event";
    const std::vector<PromptLogprob>& got = events[0].prompt_logprobs;
    ASSERT_EQ(got.size(), p.size() - 1) << "round " << round;
    EXPECT_EQ(events[0].cached_tokens, 0) << "no cached prefix for a request that needs every position";
    for (size_t i = 0; i + 1 < p.size(); i++) {
      const float* row = logits->data() + i * static_cast<size_t>(vocab);
      const float mx = *std::max_element(row, row + vocab);
      double sum = 0;
      for (int v = 0; v < vocab; v++) sum += std::exp(static_cast<double>(row[v]) - mx);
      const double lse = mx + std::log(sum);
      EXPECT_EQ(got[i].chosen.token, p[i + 1]);
      EXPECT_NEAR(got[i].chosen.logprob, row[p[i + 1]] - lse, 1e-3) << "position " << i;
      ASSERT_EQ(got[i].top.size(), static_cast<size_t>(kTop));
      const int32_t best = static_cast<int32_t>(std::max_element(row, row + vocab) - row);
      EXPECT_EQ(got[i].top[0].token, best);
      EXPECT_NEAR(got[i].top[0].logprob, mx - lse, 1e-3);
    }
  }
}

}  // namespace keel::engine
