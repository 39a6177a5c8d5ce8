// Shared by the engine's tests: the golden MoE model loaded on the CPU oracle, deterministic prompts, a greedy
// reference run alone, and a collector for one request's events.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "backend/ops.h"
#include "engine/engine.h"
#include "model/model.h"

namespace keel::engine::testing {

inline const std::string kModel = std::string(KEEL_SOURCE_DIR) + "/tests/golden/models/qwen3_moe";

struct Loaded {
  std::unique_ptr<backend::Backend> backend;
  std::unique_ptr<model::Model> model;
};

inline Loaded load(int kv_blocks, int block_size = 4, int max_batch_tokens = 64) {
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

inline std::vector<int32_t> prompt(int n, int salt) {
  std::vector<int32_t> p;
  for (int i = 0; i < n; i++) p.push_back((i * 31 + salt * 17 + 5) % 256);
  return p;
}

// The greedy tokens of `p` generated alone: the only request of a fresh engine on a fresh model.
inline std::vector<int32_t> alone(const std::vector<int32_t>& p, int max_tokens) {
  Loaded l = load(64);
  Engine engine(l.model.get(), EngineOptions{});
  Request r;
  r.prompt = p;
  r.max_tokens = max_tokens;
  r.sampling.temperature = 0;
  r.ignore_eos = true;
  auto out = engine.generate(std::move(r));
  EXPECT_TRUE(out.ok()) << out.status().message();
  return out.ok() ? *out : std::vector<int32_t>{};
}

// Collects one request's events; `done` is fulfilled by the final one.
struct Collector {
  std::vector<int32_t> tokens;
  FinishReason finish = FinishReason::kNone;
  int prompt_tokens = 0, completion_tokens = 0, cached_tokens = -1;
  std::promise<void> done;
  EventCallback callback() {
    return [this](const Event& e) {
      if (e.token >= 0) tokens.push_back(e.token);
      if (e.finish != FinishReason::kNone) {
        finish = e.finish;
        prompt_tokens = e.prompt_tokens;
        completion_tokens = e.completion_tokens;
        cached_tokens = e.cached_tokens;
        done.set_value();
      }
    };
  }
  bool wait() { return done.get_future().wait_for(std::chrono::seconds(60)) == std::future_status::ready; }
};

inline Request greedy(const std::vector<int32_t>& p, int max_tokens) {
  Request r;
  r.prompt = p;
  r.max_tokens = max_tokens;
  r.sampling.temperature = 0;
  r.ignore_eos = true;
  return r;
}

// Runs one greedy request to the end and returns what it produced.
inline Collector run_one(Engine& engine, const std::vector<int32_t>& p, int max_tokens) {
  Collector c;
  EXPECT_TRUE(engine.submit(greedy(p, max_tokens), c.callback()).ok());
  EXPECT_TRUE(c.wait());
  return c;
}

}  // namespace keel::engine::testing
