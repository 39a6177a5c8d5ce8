#include "server/metrics.h"

#include <vector>

#include <fmt/format.h>

namespace keel::server {

using prometheus::Exposition;
using prometheus::Type;

// TTFT spans a CPU prefill of thousands of tokens (seconds); ITL is one decode step (milliseconds).
Metrics::Metrics()
    : requests_(live_.counter("keel_http_requests_total", "HTTP requests answered, by route and status code.",
                              {"route", "status"})),
      prompt_tokens_(live_.counter("keel_prompt_tokens_total", "Prompt tokens of admitted requests.")),
      generation_tokens_(live_.counter("keel_generation_tokens_total", "Tokens generated.")),
      ttft_(live_.histogram("keel_time_to_first_token_seconds", "Time from admission to the first generated token.",
                            {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20,
                             40, 80})),
      itl_(live_.histogram("keel_inter_token_latency_seconds", "Time between consecutive tokens of one request.",
                           {0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2,
                            0.3, 0.4, 0.5, 0.75, 1, 2.5})) {}

void Metrics::count_request(const std::string& route, int status) { requests_.add({route, std::to_string(status)}); }
void Metrics::add_prompt_tokens(int64_t n) { prompt_tokens_.add(static_cast<uint64_t>(n)); }
void Metrics::add_generation_tokens(int64_t n) { generation_tokens_.add(static_cast<uint64_t>(n)); }
void Metrics::observe_ttft(double seconds) { ttft_.observe(seconds); }
void Metrics::observe_itl(double seconds) { itl_.observe(seconds); }

std::string Metrics::render(const engine::EngineStats& stats) const {
  Exposition out;
  live_.render(out);
  out.family("keel_requests_running", Type::kGauge, "Requests in the running batch.").sample(stats.running);
  out.family("keel_requests_waiting", Type::kGauge, "Requests queued for admission.").sample(stats.waiting);
  out.family("keel_engine_steps_total", Type::kCounter, "Forward steps the engine ran.").sample(stats.steps);
  out.family("keel_engine_step_seconds_total", Type::kCounter,
             "Time in steps, from scheduling to the token events ready to hand out.")
      .sample(fmt::format("{:.6f}", stats.step_seconds));
  out.family("keel_engine_forward_seconds_total", Type::kCounter,
             "Time in the model's forward within steps (device work and the wait for its tokens).")
      .sample(fmt::format("{:.6f}", stats.forward_seconds));
  out.family("keel_engine_batch_tokens_total", Type::kCounter,
             "Tokens computed by steps (prompt chunks and decode rows).")
      .sample(stats.batch_tokens);
  out.family("keel_kv_blocks_used", Type::kGauge, "KV cache blocks held by sequences.").sample(stats.kv_blocks_used);
  out.family("keel_kv_blocks_total", Type::kGauge, "KV cache blocks in the pool.").sample(stats.kv_blocks_total);
  // Per tier: the device pool, then host RAM and the SSD when there are. A block missed on the device is
  // looked for in host RAM, then on the SSD; misses of the last tier were computed.
  struct Tier {
    const char* name;
    uint64_t hits, misses, evictions, blocks;
  };
  const uint64_t computed = stats.prefix_cache_miss_blocks;
  std::vector<Tier> tiers{{"device", stats.prefix_cache_hit_blocks,
                           computed + stats.hot_cache_hit_blocks + stats.ssd_cache_hit_blocks,
                           stats.prefix_cache_evictions, static_cast<uint64_t>(stats.kv_blocks_cached)}};
  if (stats.hot_cache_capacity_blocks > 0)
    tiers.push_back({"host", stats.hot_cache_hit_blocks, computed + stats.ssd_cache_hit_blocks,
                     stats.hot_cache_evictions, stats.hot_cache_blocks});
  if (stats.ssd_cache_max_bytes > 0)
    tiers.push_back({"ssd", stats.ssd_cache_hit_blocks, computed, stats.ssd_cache_evictions, stats.ssd_cache_blocks});
  auto per_tier = [&](const char* name, Type type, const char* help, auto value) {
    out.family(name, type, help);
    for (const Tier& t : tiers) out.sample({{"tier", t.name}}, Exposition::format_value(value(t)));
  };
  const uint64_t block_bytes = stats.kv_block_bytes;
  per_tier("keel_prefix_cache_hits_total", Type::kCounter,
           "Full prompt KV blocks found in this tier of the prefix cache.", [](const Tier& t) { return t.hits; });
  per_tier("keel_prefix_cache_misses_total", Type::kCounter,
           "Full prompt KV blocks looked for in this tier and not found.", [](const Tier& t) { return t.misses; });
  per_tier("keel_prefix_cache_hit_bytes_total", Type::kCounter, "KV bytes reused from this tier.",
           [&](const Tier& t) { return t.hits * block_bytes; });
  per_tier("keel_prefix_cache_evictions_total", Type::kCounter, "KV blocks this tier gave up to make room.",
           [](const Tier& t) { return t.evictions; });
  per_tier("keel_prefix_cache_blocks", Type::kGauge,
           "KV blocks this tier holds for reuse (device: blocks no request uses).",
           [](const Tier& t) { return t.blocks; });
  per_tier("keel_prefix_cache_bytes", Type::kGauge, "KV bytes this tier holds for reuse.",
           [&](const Tier& t) { return t.blocks * block_bytes; });
  if (stats.hot_cache_capacity_blocks > 0) {
    out.family("keel_hot_cache_capacity_bytes", Type::kGauge, "Host RAM reserved for the prefix cache's host tier.")
        .sample(stats.hot_cache_capacity_blocks * block_bytes);
  }
  if (stats.ssd_cache_max_bytes > 0) {
    out.family("keel_ssd_cache_capacity_bytes", Type::kGauge,
               "Cap on the SSD tier's segment files (--ssd-cache-max-size).")
        .sample(stats.ssd_cache_max_bytes);
    out.family("keel_ssd_cache_file_bytes", Type::kGauge,
               "Bytes of the SSD tier's segment files (headers included, any model).")
        .sample(stats.ssd_cache_bytes);
    out.family("keel_ssd_cache_writes_total", Type::kCounter,
               "KV blocks written to the SSD tier (fsynced, then visible).")
        .sample(stats.ssd_cache_written);
    out.family("keel_ssd_cache_dropped_total", Type::kCounter,
               "KV blocks not written: queue full, writing paused after a full disk or a write error.")
        .sample(stats.ssd_cache_dropped);
    out.family("keel_ssd_cache_corrupt_total", Type::kCounter,
               "SSD records that failed a check (at start-up or on reading): skipped, never served.")
        .sample(stats.ssd_cache_corrupt);
  }
  out.family("keel_device_allocations_after_warmup", Type::kGauge,
             "Device allocations made after warm-up (should stay 0).")
      .sample(stats.allocations_after_warmup);
  return out.text();
}

}  // namespace keel::server
