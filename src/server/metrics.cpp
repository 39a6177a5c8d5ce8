#include "server/metrics.h"

#include <vector>

#include <fmt/format.h>

namespace keel::server {

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  counts_[i]++;
  sum_ += value;
  count_++;
}

void Histogram::render(const std::string& name, std::string* out) const {
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    *out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, bounds_[i], cumulative);
  }
  cumulative += counts_.back();
  *out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n", name, cumulative);
  *out += fmt::format("{}_sum {}\n", name, sum_);
  *out += fmt::format("{}_count {}\n", name, count_);
}

// TTFT spans a CPU prefill of thousands of tokens (seconds); ITL is one decode step (milliseconds).
Metrics::Metrics()
    : ttft_({0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80}),
      itl_({0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5,
            0.75, 1, 2.5}) {}

void Metrics::count_request(const std::string& route, int status) {
  std::lock_guard lock(mu_);
  requests_[{route, status}]++;
}

void Metrics::add_prompt_tokens(int64_t n) {
  std::lock_guard lock(mu_);
  prompt_tokens_ += n;
}

void Metrics::add_generation_tokens(int64_t n) {
  std::lock_guard lock(mu_);
  generation_tokens_ += n;
}

void Metrics::observe_ttft(double seconds) {
  std::lock_guard lock(mu_);
  ttft_.observe(seconds);
}

void Metrics::observe_itl(double seconds) {
  std::lock_guard lock(mu_);
  itl_.observe(seconds);
}

std::string Metrics::render(const GeneratorStats& stats) const {
  std::lock_guard lock(mu_);
  std::string out;
  // A metric of one value: its HELP and TYPE lines, then the value.
  auto one = [&](const char* name, const char* type, const char* help, const auto& value) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n{} {}\n", name, help, name, type, name, value);
  };
  out += "# HELP keel_http_requests_total HTTP requests answered, by route and status code.\n";
  out += "# TYPE keel_http_requests_total counter\n";
  for (const auto& [key, n] : requests_) {
    out += fmt::format("keel_http_requests_total{{route=\"{}\",status=\"{}\"}} {}\n", key.first, key.second, n);
  }
  one("keel_prompt_tokens_total", "counter", "Prompt tokens of admitted requests.", prompt_tokens_);
  one("keel_generation_tokens_total", "counter", "Tokens generated.", generation_tokens_);
  out += "# HELP keel_time_to_first_token_seconds Time from admission to the first generated token.\n";
  out += "# TYPE keel_time_to_first_token_seconds histogram\n";
  ttft_.render("keel_time_to_first_token_seconds", &out);
  out += "# HELP keel_inter_token_latency_seconds Time between consecutive tokens of one request.\n";
  out += "# TYPE keel_inter_token_latency_seconds histogram\n";
  itl_.render("keel_inter_token_latency_seconds", &out);
  one("keel_requests_running", "gauge", "Requests in the running batch.", stats.running);
  one("keel_requests_waiting", "gauge", "Requests queued for admission.", stats.waiting);
  one("keel_engine_steps_total", "counter", "Forward steps the engine ran.", stats.steps);
  one("keel_engine_step_seconds_total", "counter",
      "Time in steps, from scheduling to the token events ready to hand out.", fmt::format("{:.6f}", stats.step_seconds));
  one("keel_engine_forward_seconds_total", "counter",
      "Time in the model's forward within steps (device work and the wait for its tokens).",
      fmt::format("{:.6f}", stats.forward_seconds));
  one("keel_engine_batch_tokens_total", "counter", "Tokens computed by steps (prompt chunks and decode rows).",
      stats.batch_tokens);
  one("keel_kv_blocks_used", "gauge", "KV cache blocks held by sequences.", stats.kv_blocks_used);
  one("keel_kv_blocks_total", "gauge", "KV cache blocks in the pool.", stats.kv_blocks_total);
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
  auto family = [&](const char* name, const char* type, const char* help, auto value) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
    for (const Tier& t : tiers) out += fmt::format("{}{{tier=\"{}\"}} {}\n", name, t.name, value(t));
  };
  const uint64_t block_bytes = stats.kv_block_bytes;
  family("keel_prefix_cache_hits_total", "counter", "Full prompt KV blocks found in this tier of the prefix cache.",
         [](const Tier& t) { return t.hits; });
  family("keel_prefix_cache_misses_total", "counter", "Full prompt KV blocks looked for in this tier and not found.",
         [](const Tier& t) { return t.misses; });
  family("keel_prefix_cache_hit_bytes_total", "counter", "KV bytes reused from this tier.",
         [&](const Tier& t) { return t.hits * block_bytes; });
  family("keel_prefix_cache_evictions_total", "counter", "KV blocks this tier gave up to make room.",
         [](const Tier& t) { return t.evictions; });
  family("keel_prefix_cache_blocks", "gauge", "KV blocks this tier holds for reuse (device: blocks no request uses).",
         [](const Tier& t) { return t.blocks; });
  family("keel_prefix_cache_bytes", "gauge", "KV bytes this tier holds for reuse.",
         [&](const Tier& t) { return t.blocks * block_bytes; });
  if (stats.hot_cache_capacity_blocks > 0) {
    one("keel_hot_cache_capacity_bytes", "gauge", "Host RAM reserved for the prefix cache's host tier.",
        stats.hot_cache_capacity_blocks * block_bytes);
  }
  if (stats.ssd_cache_max_bytes > 0) {
    one("keel_ssd_cache_capacity_bytes", "gauge", "Cap on the SSD tier's segment files (--ssd-cache-max-size).",
        stats.ssd_cache_max_bytes);
    one("keel_ssd_cache_file_bytes", "gauge", "Bytes of the SSD tier's segment files (headers included, any model).",
        stats.ssd_cache_bytes);
    one("keel_ssd_cache_writes_total", "counter", "KV blocks written to the SSD tier (fsynced, then visible).",
        stats.ssd_cache_written);
    one("keel_ssd_cache_dropped_total", "counter",
        "KV blocks not written: queue full, writing paused after a full disk or a write error.",
        stats.ssd_cache_dropped);
    one("keel_ssd_cache_corrupt_total", "counter",
        "SSD records that failed a check (at start-up or on reading): skipped, never served.",
        stats.ssd_cache_corrupt);
  }
  if (stats.allocations_after_warmup >= 0) {
    one("keel_device_allocations_after_warmup", "gauge", "Device allocations made after warm-up (should stay 0).",
        stats.allocations_after_warmup);
  }
  return out;
}

}  // namespace keel::server
