// The engine against single-sequence generation on a golden model: batching, preemption and cancellation
// must never change a greedy answer or leak a block.
#include "engine/engine.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>

#include "engine/generate.h"

namespace keel::engine {

namespace {

const std::string kModel = std::string(KEEL_SOURCE_DIR) + "/tests/golden/models/qwen3_moe";

struct Loaded {
  std::unique_ptr<backend::Backend> backend;
  std::unique_ptr<model::Model> model;
};

Loaded load(int kv_blocks, int block_size = 4, int max_batch_tokens = 64) {
  Loaded l;
  l.backend = backend::make_cpu_backend();
  model::LoadOptions o;
  o.max_batch_tokens = max_batch_tokens;
  o.kv_blocks = kv_blocks;
  o.block_size = block_size;
  auto m = model::Model::load(env::Env::posix(), kModel, l.backend.get(), o);
  EXPECT_TRUE(m.ok()) << m.status().message();
  l.model = std::move(*m);
  return l;
}

std::vector<int32_t> prompt(int n, int salt) {
  std::vector<int32_t> p;
  for (int i = 0; i < n; i++) p.push_back((i * 31 + salt * 17 + 5) % 256);
  return p;
}

std::vector<int32_t> alone(const std::vector<int32_t>& p, int max_tokens) {
  Loaded l = load(64);
  GenerateOptions g;
  g.max_tokens = max_tokens;
  g.sampling.temperature = 0;
  return *generate(*l.model, p, g);
}

// Collects one request's events; `done` is fulfilled by the final one.
struct Collector {
  std::vector<int32_t> tokens;
  FinishReason finish = FinishReason::kNone;
  int prompt_tokens = 0, completion_tokens = 0;
  std::promise<void> done;
  EventCallback callback() {
    return [this](const Event& e) {
      if (e.token >= 0) tokens.push_back(e.token);
      if (e.finish != FinishReason::kNone) {
        finish = e.finish;
        prompt_tokens = e.prompt_tokens;
        completion_tokens = e.completion_tokens;
        done.set_value();
      }
    };
  }
  bool wait() { return done.get_future().wait_for(std::chrono::seconds(60)) == std::future_status::ready; }
};

Request greedy(const std::vector<int32_t>& p, int max_tokens) {
  Request r;
  r.prompt = p;
  r.max_tokens = max_tokens;
  r.sampling.temperature = 0;
  r.ignore_eos = true;
  return r;
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

}  // namespace keel::engine
