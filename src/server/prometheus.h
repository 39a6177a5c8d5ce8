// A small Prometheus registry, text format 0.0.4: the one place that writes HELP, TYPE and sample lines. Debian
// bookworm packages no prometheus-cpp (docs/DECISIONS.md), and keel needs only counters, gauges and fixed-bucket
// histograms.
//
//   Registry live;                                     // updated as requests go (thread-safe)
//   CounterFamily& requests = live.counter("keel_http_requests_total", "HTTP requests answered.", {"route", "status"});
//   requests.add({"/v1/chat/completions", "200"});
//   Exposition out;                                    // one scrape
//   live.render(out);
//   out.family("keel_kv_blocks_used", Type::kGauge, "KV cache blocks held by sequences.").sample(12);
//   return out.text();
#pragma once

#include <concepts>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace keel::server::prometheus {

enum class Type { kCounter, kGauge, kHistogram };

using LabelValues = std::vector<std::string>;  // in the order of the family's label names

// Observations counted into fixed buckets (`bounds`, ascending; +Inf is implied).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double value);
  const std::vector<double>& bounds() const { return bounds_; }
  // Per bucket, not cumulative; the last is +Inf.
  const std::vector<uint64_t>& counts() const { return counts_; }
  double sum() const { return sum_; }
  uint64_t count() const { return count_; }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;
  double sum_ = 0;
  uint64_t count_ = 0;
};

// One scrape's text. Each family is declared once (HELP and TYPE), then its samples; declaring a name twice, or a
// sample of another type than its family's, is a programming error (asserted).
class Exposition {
 public:
  Exposition& family(std::string_view name, Type type, std::string_view help);
  // A sample of the family declared last, with these labels (name, value pairs in order).
  Exposition& sample(const std::vector<std::pair<std::string, std::string>>& labels, std::string_view value);
  Exposition& sample(std::string_view value) { return sample({}, value); }
  template <typename T>
    requires std::integral<T> || std::floating_point<T>
  Exposition& sample(T value) {
    return sample({}, format_value(value));
  }
  // The _bucket, _sum and _count lines of the histogram family declared last.
  Exposition& histogram(const Histogram& h);

  const std::string& text() const { return text_; }

  static std::string format_value(double value);
  template <std::integral T>
  static std::string format_value(T value) {
    return std::to_string(value);
  }

 private:
  std::string text_;
  std::string current_;  // the family declared last
  Type current_type_ = Type::kCounter;
  std::set<std::string, std::less<>> declared_;
};

// A counter of each label set, created on first use.
class CounterFamily {
 public:
  void add(const LabelValues& labels, uint64_t n = 1);
  void add(uint64_t n = 1) { add({}, n); }

 private:
  friend class Registry;
  CounterFamily(std::mutex* mu, std::vector<std::string> label_names) : mu_(mu), names_(std::move(label_names)) {}
  std::mutex* mu_;
  std::vector<std::string> names_;
  std::map<LabelValues, uint64_t> values_;
};

class HistogramFamily {
 public:
  void observe(double value);

 private:
  friend class Registry;
  HistogramFamily(std::mutex* mu, std::vector<double> bounds) : mu_(mu), histogram_(std::move(bounds)) {}
  std::mutex* mu_;
  Histogram histogram_;
};

// The metrics a process updates as it goes, rendered in the order they were registered.
class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  CounterFamily& counter(std::string name, std::string help, std::vector<std::string> label_names = {});
  HistogramFamily& histogram(std::string name, std::string help, std::vector<double> bounds);
  void render(Exposition& out) const;

 private:
  struct Entry {
    std::string name, help;
    std::unique_ptr<CounterFamily> counter;
    std::unique_ptr<HistogramFamily> histogram;
  };
  mutable std::mutex mu_;
  std::vector<Entry> entries_;
};

}  // namespace keel::server::prometheus
