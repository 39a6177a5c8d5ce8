// Generator: what the HTTP layer needs from a model — submit token ids, receive token events, cancel, drain,
// read stats. The real one forwards to engine::Engine (engine_generator.h); tests use a scripted fake, so every
// HTTP behaviour is testable without a model.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/status.h"
#include "engine/request.h"

namespace keel::server {

enum class Finish { kNone, kStop, kLength, kCancelled, kError };

struct GenerationRequest {
  std::vector<int32_t> prompt;
  int max_tokens = 16;
  engine::SamplingParams sampling;
  std::vector<int32_t> stop_token_ids;
  bool ignore_eos = false;
  int top_logprobs = -1;  // -1: none; 0: the chosen token's; n: and the n most likely
  std::string cache_salt;  // isolates this request's cached prefixes from other salts' (vLLM's cache_salt)
};

struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0.0f;
};

// One per generated token; the last one carries the finish reason (and may carry no token: -1).
struct TokenEvent {
  int32_t token = -1;
  TokenLogprob chosen;
  std::vector<TokenLogprob> top;
  Finish finish = Finish::kNone;
  std::string error;
  int cached_tokens = 0;  // prompt tokens whose KV the prefix cache supplied
};
// Called on the generator's thread; must return quickly and never block.
using TokenCallback = std::function<void(const TokenEvent&)>;

struct GeneratorStats {
  int running = 0;
  int waiting = 0;
  int kv_blocks_used = 0;
  int kv_blocks_total = 0;
  int64_t allocations_after_warmup = -1;  // -1: not reported
  // Engine steps and where their time went (EngineStats).
  uint64_t steps = 0;
  double step_seconds = 0;
  double forward_seconds = 0;
  uint64_t batch_tokens = 0;
  // Prefix cache, device tier (counters in blocks of kv_block_bytes bytes).
  int kv_blocks_cached = 0;
  uint64_t kv_block_bytes = 0;
  uint64_t prefix_cache_hit_blocks = 0;
  uint64_t prefix_cache_miss_blocks = 0;
  uint64_t prefix_cache_evictions = 0;
  // Host RAM tier (reported when hot_cache_capacity_blocks > 0).
  uint64_t hot_cache_hit_blocks = 0;
  uint64_t hot_cache_stores = 0;
  uint64_t hot_cache_evictions = 0;
  uint64_t hot_cache_blocks = 0;
  uint64_t hot_cache_capacity_blocks = 0;
  // SSD tier (reported when ssd_cache_max_bytes > 0).
  uint64_t ssd_cache_hit_blocks = 0;
  uint64_t ssd_cache_evictions = 0;
  uint64_t ssd_cache_blocks = 0;
  uint64_t ssd_cache_bytes = 0;
  uint64_t ssd_cache_max_bytes = 0;
  uint64_t ssd_cache_written = 0;
  uint64_t ssd_cache_dropped = 0;
  uint64_t ssd_cache_corrupt = 0;
};

class Generator {
 public:
  virtual ~Generator() = default;
  // Fails at once for what can never run: kInvalidArgument (the context guard; the message has the numbers),
  // kResourceExhausted (draining or full).
  virtual Result<uint64_t> submit(GenerationRequest request, TokenCallback callback) = 0;
  // The request's callback then receives a final kCancelled event (unless it already finished).
  virtual void cancel(uint64_t id) = 0;
  virtual void drain() = 0;
  virtual GeneratorStats stats() const = 0;
  // The longest prompt + completion a request may have, in tokens.
  virtual int max_model_len() const = 0;
  // Why generation stopped for good ("" while healthy): /health then answers 503 "unhealthy" with it.
  virtual std::string failure() const { return ""; }
};

}  // namespace keel::server
