// Server metrics in Prometheus text format (version 0.0.4): request counts by route and status, token counters,
// time-to-first-token and inter-token-latency histograms (live, in a prometheus::Registry), plus the generator's
// gauges and counters read at scrape time.
#pragma once

#include <cstdint>
#include <string>

#include "server/generator.h"
#include "server/prometheus.h"

namespace keel::server {

class Metrics {
 public:
  Metrics();
  void count_request(const std::string& route, int status);
  void add_prompt_tokens(int64_t n);
  void add_generation_tokens(int64_t n);
  void observe_ttft(double seconds);
  void observe_itl(double seconds);
  std::string render(const engine::EngineStats& stats) const;

 private:
  prometheus::Registry live_;
  prometheus::CounterFamily& requests_;
  prometheus::CounterFamily& prompt_tokens_;
  prometheus::CounterFamily& generation_tokens_;
  prometheus::HistogramFamily& ttft_;
  prometheus::HistogramFamily& itl_;
};

}  // namespace keel::server
