#include "server/engine_generator.h"

namespace keel::server {

namespace {

Finish to_finish(engine::FinishReason r) {
  switch (r) {
    case engine::FinishReason::kNone: return Finish::kNone;
    case engine::FinishReason::kStop: return Finish::kStop;
    case engine::FinishReason::kLength: return Finish::kLength;
    case engine::FinishReason::kCancelled: return Finish::kCancelled;
    case engine::FinishReason::kError: return Finish::kError;
  }
  return Finish::kError;
}

}  // namespace

Result<uint64_t> EngineGenerator::submit(GenerationRequest request, TokenCallback callback) {
  engine::Request r;
  r.prompt = std::move(request.prompt);
  r.max_tokens = request.max_tokens;
  r.sampling = request.sampling;
  r.stop_token_ids = std::move(request.stop_token_ids);
  r.ignore_eos = request.ignore_eos;
  r.top_logprobs = request.top_logprobs;
  r.cache_salt = std::move(request.cache_salt);
  return engine_->submit(std::move(r), [callback = std::move(callback)](const engine::Event& e) {
    TokenEvent t;
    t.token = e.token;
    t.chosen = {e.chosen.token, e.chosen.logprob};
    t.top.reserve(e.top.size());
    for (const auto& alt : e.top) t.top.push_back({alt.token, alt.logprob});
    t.finish = to_finish(e.finish);
    t.error = e.error;
    t.cached_tokens = e.cached_tokens;
    callback(t);
  });
}

GeneratorStats EngineGenerator::stats() const {
  engine::EngineStats e = engine_->stats();
  GeneratorStats s;
  s.running = e.running;
  s.waiting = e.waiting;
  s.kv_blocks_used = e.kv_blocks_used;
  s.kv_blocks_total = e.kv_blocks_total;
  s.allocations_after_warmup = static_cast<int64_t>(e.allocations_after_warmup);
  s.steps = e.steps;
  s.step_seconds = e.step_seconds;
  s.forward_seconds = e.forward_seconds;
  s.batch_tokens = e.batch_tokens;
  s.kv_blocks_cached = e.kv_blocks_cached;
  s.kv_block_bytes = e.kv_block_bytes;
  s.prefix_cache_hit_blocks = e.prefix_cache_hit_blocks;
  s.prefix_cache_miss_blocks = e.prefix_cache_miss_blocks;
  s.prefix_cache_evictions = e.prefix_cache_evictions;
  s.hot_cache_hit_blocks = e.hot_cache_hit_blocks;
  s.hot_cache_stores = e.hot_cache_stores;
  s.hot_cache_evictions = e.hot_cache_evictions;
  s.hot_cache_blocks = e.hot_cache_blocks;
  s.hot_cache_capacity_blocks = e.hot_cache_capacity_blocks;
  s.ssd_cache_hit_blocks = e.ssd_cache_hit_blocks;
  s.ssd_cache_evictions = e.ssd_cache_evictions;
  s.ssd_cache_blocks = e.ssd_cache_blocks;
  s.ssd_cache_bytes = e.ssd_cache_bytes;
  s.ssd_cache_max_bytes = e.ssd_cache_max_bytes;
  s.ssd_cache_written = e.ssd_cache_written;
  s.ssd_cache_dropped = e.ssd_cache_dropped;
  s.ssd_cache_corrupt = e.ssd_cache_corrupt;
  return s;
}

}  // namespace keel::server
