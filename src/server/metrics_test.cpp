#include "server/metrics.h"

#include <gtest/gtest.h>

#include "server/prometheus.h"

namespace keel::server {
namespace {

// The exact text /metrics answered before the metrics moved onto prometheus::Registry (rendered by the hand-written
// code of commit 3c3b526 from the same calls): every name, label, HELP, TYPE and value kept.
TEST(Metrics, RenderIsTheTextTheHandWrittenExpositionGaveWithEveryTier) {
  Metrics m;
  m.count_request("/v1/chat/completions", 200);
  m.count_request("/v1/chat/completions", 200);
  m.count_request("/v1/chat/completions", 400);
  m.count_request("/health", 200);
  m.count_request("other", 404);
  m.add_prompt_tokens(17);
  m.add_generation_tokens(5);
  m.observe_ttft(0.003);
  m.observe_ttft(1.5);
  m.observe_itl(0.02);
  m.observe_itl(0.0004);
  m.observe_itl(3);
  engine::EngineStats s;
  s.running = 2;
  s.waiting = 1;
  s.kv_blocks_used = 10;
  s.kv_blocks_total = 64;
  s.allocations_after_warmup = 0;
  s.steps = 40;
  s.step_seconds = 1.25;
  s.forward_seconds = 0.5;
  s.batch_tokens = 300;
  s.kv_blocks_cached = 3;
  s.kv_block_bytes = 4096;
  s.prefix_cache_hit_blocks = 7;
  s.prefix_cache_miss_blocks = 9;
  s.prefix_cache_evictions = 2;
  s.hot_cache_hit_blocks = 4;
  s.hot_cache_evictions = 1;
  s.hot_cache_blocks = 6;
  s.hot_cache_capacity_blocks = 32;
  s.ssd_cache_hit_blocks = 5;
  s.ssd_cache_evictions = 0;
  s.ssd_cache_blocks = 11;
  s.ssd_cache_bytes = 50000;
  s.ssd_cache_max_bytes = 1 << 20;
  s.ssd_cache_written = 12;
  s.ssd_cache_dropped = 1;
  s.ssd_cache_corrupt = 0;
  EXPECT_EQ(m.render(s),
      "# HELP keel_http_requests_total HTTP requests answered, by route and status code.\n"
      "# TYPE keel_http_requests_total counter\n"
      "keel_http_requests_total{route=\"/health\",status=\"200\"} 1\n"
      "keel_http_requests_total{route=\"/v1/chat/completions\",status=\"200\"} 2\n"
      "keel_http_requests_total{route=\"/v1/chat/completions\",status=\"400\"} 1\n"
      "keel_http_requests_total{route=\"other\",status=\"404\"} 1\n"
      "# HELP keel_prompt_tokens_total Prompt tokens of admitted requests.\n"
      "# TYPE keel_prompt_tokens_total counter\n"
      "keel_prompt_tokens_total 17\n"
      "# HELP keel_generation_tokens_total Tokens generated.\n"
      "# TYPE keel_generation_tokens_total counter\n"
      "keel_generation_tokens_total 5\n"
      "# HELP keel_time_to_first_token_seconds Time from admission to the first generated token.\n"
      "# TYPE keel_time_to_first_token_seconds histogram\n"
      "keel_time_to_first_token_seconds_bucket{le=\"0.001\"} 0\n"
      "keel_time_to_first_token_seconds_bucket{le=\"0.005\"} 1\n"
      "keel_time_to_first_token_seconds_bucket{le=\"0.01\"} 1\n"
      "keel_time_to_first_token_seconds_bucket{le=\"0.02\"} 1\n"
      "keel_time_to_first_token_seconds_bucket{le=\"0.04\"} 1\n"
      "keel_time_to_first_token_seconds_bucket{le=\"0.06\"} 1\n"
      "keel_time_to_first_token_seconds_bucket{le=\"0.08\"} 1\n"
      "keel_time_to_first_token_seconds_bucket{le=\"0.1\"} 1\n"
      "keel_time_to_first_token_seconds_bucket{le=\"0.25\"} 1\n"
      "keel_time_to_first_token_seconds_bucket{le=\"0.5\"} 1\n"
      "keel_time_to_first_token_seconds_bucket{le=\"0.75\"} 1\n"
      "keel_time_to_first_token_seconds_bucket{le=\"1\"} 1\n"
      "keel_time_to_first_token_seconds_bucket{le=\"2.5\"} 2\n"
      "keel_time_to_first_token_seconds_bucket{le=\"5\"} 2\n"
      "keel_time_to_first_token_seconds_bucket{le=\"7.5\"} 2\n"
      "keel_time_to_first_token_seconds_bucket{le=\"10\"} 2\n"
      "keel_time_to_first_token_seconds_bucket{le=\"20\"} 2\n"
      "keel_time_to_first_token_seconds_bucket{le=\"40\"} 2\n"
      "keel_time_to_first_token_seconds_bucket{le=\"80\"} 2\n"
      "keel_time_to_first_token_seconds_bucket{le=\"+Inf\"} 2\n"
      "keel_time_to_first_token_seconds_sum 1.503\n"
      "keel_time_to_first_token_seconds_count 2\n"
      "# HELP keel_inter_token_latency_seconds Time between consecutive tokens of one request.\n"
      "# TYPE keel_inter_token_latency_seconds histogram\n"
      "keel_inter_token_latency_seconds_bucket{le=\"0.001\"} 1\n"
      "keel_inter_token_latency_seconds_bucket{le=\"0.0025\"} 1\n"
      "keel_inter_token_latency_seconds_bucket{le=\"0.005\"} 1\n"
      "keel_inter_token_latency_seconds_bucket{le=\"0.01\"} 1\n"
      "keel_inter_token_latency_seconds_bucket{le=\"0.015\"} 1\n"
      "keel_inter_token_latency_seconds_bucket{le=\"0.02\"} 2\n"
      "keel_inter_token_latency_seconds_bucket{le=\"0.025\"} 2\n"
      "keel_inter_token_latency_seconds_bucket{le=\"0.03\"} 2\n"
      "keel_inter_token_latency_seconds_bucket{le=\"0.04\"} 2\n"
      "keel_inter_token_latency_seconds_bucket{le=\"0.05\"} 2\n"
      "keel_inter_token_latency_seconds_bucket{le=\"0.075\"} 2\n"
      "keel_inter_token_latency_seconds_bucket{le=\"0.1\"} 2\n"
      "keel_inter_token_latency_seconds_bucket{le=\"0.15\"} 2\n"
      "keel_inter_token_latency_seconds_bucket{le=\"0.2\"} 2\n"
      "keel_inter_token_latency_seconds_bucket{le=\"0.3\"} 2\n"
      "keel_inter_token_latency_seconds_bucket{le=\"0.4\"} 2\n"
      "keel_inter_token_latency_seconds_bucket{le=\"0.5\"} 2\n"
      "keel_inter_token_latency_seconds_bucket{le=\"0.75\"} 2\n"
      "keel_inter_token_latency_seconds_bucket{le=\"1\"} 2\n"
      "keel_inter_token_latency_seconds_bucket{le=\"2.5\"} 2\n"
      "keel_inter_token_latency_seconds_bucket{le=\"+Inf\"} 3\n"
      "keel_inter_token_latency_seconds_sum 3.0204\n"
      "keel_inter_token_latency_seconds_count 3\n"
      "# HELP keel_requests_running Requests in the running batch.\n"
      "# TYPE keel_requests_running gauge\n"
      "keel_requests_running 2\n"
      "# HELP keel_requests_waiting Requests queued for admission.\n"
      "# TYPE keel_requests_waiting gauge\n"
      "keel_requests_waiting 1\n"
      "# HELP keel_engine_steps_total Forward steps the engine ran.\n"
      "# TYPE keel_engine_steps_total counter\n"
      "keel_engine_steps_total 40\n"
      "# HELP keel_engine_step_seconds_total Time in steps, from scheduling to the token events ready to hand out.\n"
      "# TYPE keel_engine_step_seconds_total counter\n"
      "keel_engine_step_seconds_total 1.250000\n"
      "# HELP keel_engine_forward_seconds_total Time in the model's forward within steps (device work and the wait for its tokens).\n"
      "# TYPE keel_engine_forward_seconds_total counter\n"
      "keel_engine_forward_seconds_total 0.500000\n"
      "# HELP keel_engine_batch_tokens_total Tokens computed by steps (prompt chunks and decode rows).\n"
      "# TYPE keel_engine_batch_tokens_total counter\n"
      "keel_engine_batch_tokens_total 300\n"
      "# HELP keel_kv_blocks_used KV cache blocks held by sequences.\n"
      "# TYPE keel_kv_blocks_used gauge\n"
      "keel_kv_blocks_used 10\n"
      "# HELP keel_kv_blocks_total KV cache blocks in the pool.\n"
      "# TYPE keel_kv_blocks_total gauge\n"
      "keel_kv_blocks_total 64\n"
      "# HELP keel_prefix_cache_hits_total Full prompt KV blocks found in this tier of the prefix cache.\n"
      "# TYPE keel_prefix_cache_hits_total counter\n"
      "keel_prefix_cache_hits_total{tier=\"device\"} 7\n"
      "keel_prefix_cache_hits_total{tier=\"host\"} 4\n"
      "keel_prefix_cache_hits_total{tier=\"ssd\"} 5\n"
      "# HELP keel_prefix_cache_misses_total Full prompt KV blocks looked for in this tier and not found.\n"
      "# TYPE keel_prefix_cache_misses_total counter\n"
      "keel_prefix_cache_misses_total{tier=\"device\"} 18\n"
      "keel_prefix_cache_misses_total{tier=\"host\"} 14\n"
      "keel_prefix_cache_misses_total{tier=\"ssd\"} 9\n"
      "# HELP keel_prefix_cache_hit_bytes_total KV bytes reused from this tier.\n"
      "# TYPE keel_prefix_cache_hit_bytes_total counter\n"
      "keel_prefix_cache_hit_bytes_total{tier=\"device\"} 28672\n"
      "keel_prefix_cache_hit_bytes_total{tier=\"host\"} 16384\n"
      "keel_prefix_cache_hit_bytes_total{tier=\"ssd\"} 20480\n"
      "# HELP keel_prefix_cache_evictions_total KV blocks this tier gave up to make room.\n"
      "# TYPE keel_prefix_cache_evictions_total counter\n"
      "keel_prefix_cache_evictions_total{tier=\"device\"} 2\n"
      "keel_prefix_cache_evictions_total{tier=\"host\"} 1\n"
      "keel_prefix_cache_evictions_total{tier=\"ssd\"} 0\n"
      "# HELP keel_prefix_cache_blocks KV blocks this tier holds for reuse (device: blocks no request uses).\n"
      "# TYPE keel_prefix_cache_blocks gauge\n"
      "keel_prefix_cache_blocks{tier=\"device\"} 3\n"
      "keel_prefix_cache_blocks{tier=\"host\"} 6\n"
      "keel_prefix_cache_blocks{tier=\"ssd\"} 11\n"
      "# HELP keel_prefix_cache_bytes KV bytes this tier holds for reuse.\n"
      "# TYPE keel_prefix_cache_bytes gauge\n"
      "keel_prefix_cache_bytes{tier=\"device\"} 12288\n"
      "keel_prefix_cache_bytes{tier=\"host\"} 24576\n"
      "keel_prefix_cache_bytes{tier=\"ssd\"} 45056\n"
      "# HELP keel_hot_cache_capacity_bytes Host RAM reserved for the prefix cache's host tier.\n"
      "# TYPE keel_hot_cache_capacity_bytes gauge\n"
      "keel_hot_cache_capacity_bytes 131072\n"
      "# HELP keel_ssd_cache_capacity_bytes Cap on the SSD tier's segment files (--ssd-cache-max-size).\n"
      "# TYPE keel_ssd_cache_capacity_bytes gauge\n"
      "keel_ssd_cache_capacity_bytes 1048576\n"
      "# HELP keel_ssd_cache_file_bytes Bytes of the SSD tier's segment files (headers included, any model).\n"
      "# TYPE keel_ssd_cache_file_bytes gauge\n"
      "keel_ssd_cache_file_bytes 50000\n"
      "# HELP keel_ssd_cache_writes_total KV blocks written to the SSD tier (fsynced, then visible).\n"
      "# TYPE keel_ssd_cache_writes_total counter\n"
      "keel_ssd_cache_writes_total 12\n"
      "# HELP keel_ssd_cache_dropped_total KV blocks not written: queue full, writing paused after a full disk or a write error.\n"
      "# TYPE keel_ssd_cache_dropped_total counter\n"
      "keel_ssd_cache_dropped_total 1\n"
      "# HELP keel_ssd_cache_corrupt_total SSD records that failed a check (at start-up or on reading): skipped, never served.\n"
      "# TYPE keel_ssd_cache_corrupt_total counter\n"
      "keel_ssd_cache_corrupt_total 0\n"
      "# HELP keel_device_allocations_after_warmup Device allocations made after warm-up (should stay 0).\n"
      "# TYPE keel_device_allocations_after_warmup gauge\n"
      "keel_device_allocations_after_warmup 0\n");
}

TEST(Metrics, AFreshServerWithoutTiersRendersTheDeviceTierOnly) {
  EXPECT_EQ(Metrics().render(engine::EngineStats{}),
      "# HELP keel_http_requests_total HTTP requests answered, by route and status code.\n"
      "# TYPE keel_http_requests_total counter\n"
      "# HELP keel_prompt_tokens_total Prompt tokens of admitted requests.\n"
      "# TYPE keel_prompt_tokens_total counter\n"
      "keel_prompt_tokens_total 0\n"
      "# HELP keel_generation_tokens_total Tokens generated.\n"
      "# TYPE keel_generation_tokens_total counter\n"
      "keel_generation_tokens_total 0\n"
      "# HELP keel_time_to_first_token_seconds Time from admission to the first generated token.\n"
      "# TYPE keel_time_to_first_token_seconds histogram\n"
      "keel_time_to_first_token_seconds_bucket{le=\"0.001\"} 0\n"
      "keel_time_to_first_token_seconds_bucket{le=\"0.005\"} 0\n"
      "keel_time_to_first_token_seconds_bucket{le=\"0.01\"} 0\n"
      "keel_time_to_first_token_seconds_bucket{le=\"0.02\"} 0\n"
      "keel_time_to_first_token_seconds_bucket{le=\"0.04\"} 0\n"
      "keel_time_to_first_token_seconds_bucket{le=\"0.06\"} 0\n"
      "keel_time_to_first_token_seconds_bucket{le=\"0.08\"} 0\n"
      "keel_time_to_first_token_seconds_bucket{le=\"0.1\"} 0\n"
      "keel_time_to_first_token_seconds_bucket{le=\"0.25\"} 0\n"
      "keel_time_to_first_token_seconds_bucket{le=\"0.5\"} 0\n"
      "keel_time_to_first_token_seconds_bucket{le=\"0.75\"} 0\n"
      "keel_time_to_first_token_seconds_bucket{le=\"1\"} 0\n"
      "keel_time_to_first_token_seconds_bucket{le=\"2.5\"} 0\n"
      "keel_time_to_first_token_seconds_bucket{le=\"5\"} 0\n"
      "keel_time_to_first_token_seconds_bucket{le=\"7.5\"} 0\n"
      "keel_time_to_first_token_seconds_bucket{le=\"10\"} 0\n"
      "keel_time_to_first_token_seconds_bucket{le=\"20\"} 0\n"
      "keel_time_to_first_token_seconds_bucket{le=\"40\"} 0\n"
      "keel_time_to_first_token_seconds_bucket{le=\"80\"} 0\n"
      "keel_time_to_first_token_seconds_bucket{le=\"+Inf\"} 0\n"
      "keel_time_to_first_token_seconds_sum 0\n"
      "keel_time_to_first_token_seconds_count 0\n"
      "# HELP keel_inter_token_latency_seconds Time between consecutive tokens of one request.\n"
      "# TYPE keel_inter_token_latency_seconds histogram\n"
      "keel_inter_token_latency_seconds_bucket{le=\"0.001\"} 0\n"
      "keel_inter_token_latency_seconds_bucket{le=\"0.0025\"} 0\n"
      "keel_inter_token_latency_seconds_bucket{le=\"0.005\"} 0\n"
      "keel_inter_token_latency_seconds_bucket{le=\"0.01\"} 0\n"
      "keel_inter_token_latency_seconds_bucket{le=\"0.015\"} 0\n"
      "keel_inter_token_latency_seconds_bucket{le=\"0.02\"} 0\n"
      "keel_inter_token_latency_seconds_bucket{le=\"0.025\"} 0\n"
      "keel_inter_token_latency_seconds_bucket{le=\"0.03\"} 0\n"
      "keel_inter_token_latency_seconds_bucket{le=\"0.04\"} 0\n"
      "keel_inter_token_latency_seconds_bucket{le=\"0.05\"} 0\n"
      "keel_inter_token_latency_seconds_bucket{le=\"0.075\"} 0\n"
      "keel_inter_token_latency_seconds_bucket{le=\"0.1\"} 0\n"
      "keel_inter_token_latency_seconds_bucket{le=\"0.15\"} 0\n"
      "keel_inter_token_latency_seconds_bucket{le=\"0.2\"} 0\n"
      "keel_inter_token_latency_seconds_bucket{le=\"0.3\"} 0\n"
      "keel_inter_token_latency_seconds_bucket{le=\"0.4\"} 0\n"
      "keel_inter_token_latency_seconds_bucket{le=\"0.5\"} 0\n"
      "keel_inter_token_latency_seconds_bucket{le=\"0.75\"} 0\n"
      "keel_inter_token_latency_seconds_bucket{le=\"1\"} 0\n"
      "keel_inter_token_latency_seconds_bucket{le=\"2.5\"} 0\n"
      "keel_inter_token_latency_seconds_bucket{le=\"+Inf\"} 0\n"
      "keel_inter_token_latency_seconds_sum 0\n"
      "keel_inter_token_latency_seconds_count 0\n"
      "# HELP keel_requests_running Requests in the running batch.\n"
      "# TYPE keel_requests_running gauge\n"
      "keel_requests_running 0\n"
      "# HELP keel_requests_waiting Requests queued for admission.\n"
      "# TYPE keel_requests_waiting gauge\n"
      "keel_requests_waiting 0\n"
      "# HELP keel_engine_steps_total Forward steps the engine ran.\n"
      "# TYPE keel_engine_steps_total counter\n"
      "keel_engine_steps_total 0\n"
      "# HELP keel_engine_step_seconds_total Time in steps, from scheduling to the token events ready to hand out.\n"
      "# TYPE keel_engine_step_seconds_total counter\n"
      "keel_engine_step_seconds_total 0.000000\n"
      "# HELP keel_engine_forward_seconds_total Time in the model's forward within steps (device work and the wait for its tokens).\n"
      "# TYPE keel_engine_forward_seconds_total counter\n"
      "keel_engine_forward_seconds_total 0.000000\n"
      "# HELP keel_engine_batch_tokens_total Tokens computed by steps (prompt chunks and decode rows).\n"
      "# TYPE keel_engine_batch_tokens_total counter\n"
      "keel_engine_batch_tokens_total 0\n"
      "# HELP keel_kv_blocks_used KV cache blocks held by sequences.\n"
      "# TYPE keel_kv_blocks_used gauge\n"
      "keel_kv_blocks_used 0\n"
      "# HELP keel_kv_blocks_total KV cache blocks in the pool.\n"
      "# TYPE keel_kv_blocks_total gauge\n"
      "keel_kv_blocks_total 0\n"
      "# HELP keel_prefix_cache_hits_total Full prompt KV blocks found in this tier of the prefix cache.\n"
      "# TYPE keel_prefix_cache_hits_total counter\n"
      "keel_prefix_cache_hits_total{tier=\"device\"} 0\n"
      "# HELP keel_prefix_cache_misses_total Full prompt KV blocks looked for in this tier and not found.\n"
      "# TYPE keel_prefix_cache_misses_total counter\n"
      "keel_prefix_cache_misses_total{tier=\"device\"} 0\n"
      "# HELP keel_prefix_cache_hit_bytes_total KV bytes reused from this tier.\n"
      "# TYPE keel_prefix_cache_hit_bytes_total counter\n"
      "keel_prefix_cache_hit_bytes_total{tier=\"device\"} 0\n"
      "# HELP keel_prefix_cache_evictions_total KV blocks this tier gave up to make room.\n"
      "# TYPE keel_prefix_cache_evictions_total counter\n"
      "keel_prefix_cache_evictions_total{tier=\"device\"} 0\n"
      "# HELP keel_prefix_cache_blocks KV blocks this tier holds for reuse (device: blocks no request uses).\n"
      "# TYPE keel_prefix_cache_blocks gauge\n"
      "keel_prefix_cache_blocks{tier=\"device\"} 0\n"
      "# HELP keel_prefix_cache_bytes KV bytes this tier holds for reuse.\n"
      "# TYPE keel_prefix_cache_bytes gauge\n"
      "keel_prefix_cache_bytes{tier=\"device\"} 0\n"
      "# HELP keel_device_allocations_after_warmup Device allocations made after warm-up (should stay 0).\n"
      "# TYPE keel_device_allocations_after_warmup gauge\n"
      "keel_device_allocations_after_warmup 0\n");
}

TEST(Prometheus, EachFamilyHasHelpAndTypeOnceAndLabelValuesAreEscaped) {
  prometheus::Registry live;
  prometheus::CounterFamily& hits = live.counter("x_hits_total", "Hits.", {"path"});
  hits.add({"a\"b\\c\nd"}, 2);
  hits.add({"plain"});
  prometheus::Exposition out;
  live.render(out);
  out.family("x_up", prometheus::Type::kGauge, "Up.").sample(1);
  EXPECT_EQ(out.text(),
            "# HELP x_hits_total Hits.\n"
            "# TYPE x_hits_total counter\n"
            "x_hits_total{path=\"a\\\"b\\\\c\\nd\"} 2\n"
            "x_hits_total{path=\"plain\"} 1\n"
            "# HELP x_up Up.\n"
            "# TYPE x_up gauge\n"
            "x_up 1\n");
}

TEST(Prometheus, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  prometheus::Registry live;
  prometheus::HistogramFamily& h = live.histogram("x_seconds", "Time.", {0.5, 1});
  h.observe(0.25);
  h.observe(0.5);  // on a bound: counted in it (le)
  h.observe(4);
  prometheus::Exposition out;
  live.render(out);
  EXPECT_EQ(out.text(),
            "# HELP x_seconds Time.\n"
            "# TYPE x_seconds histogram\n"
            "x_seconds_bucket{le=\"0.5\"} 2\n"
            "x_seconds_bucket{le=\"1\"} 2\n"
            "x_seconds_bucket{le=\"+Inf\"} 3\n"
            "x_seconds_sum 4.75\n"
            "x_seconds_count 3\n");
}

}  // namespace
}  // namespace keel::server
