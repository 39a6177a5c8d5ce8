#include "server/prometheus.h"

#include <cassert>

#include <fmt/format.h>

namespace keel::server::prometheus {

namespace {

const char* type_name(Type type) {
  switch (type) {
    case Type::kCounter: return "counter";
    case Type::kGauge: return "gauge";
    case Type::kHistogram: return "histogram";
  }
  return "untyped";
}

// A label value as the text format escapes it: backslash, double quote and newline.
std::string escape_label(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  counts_[i]++;
  sum_ += value;
  count_++;
}

std::string Exposition::format_value(double value) { return fmt::format("{}", value); }

Exposition& Exposition::family(std::string_view name, Type type, std::string_view help) {
  [[maybe_unused]] const bool first = declared_.emplace(name).second;
  assert(first && "a metric family is declared once per scrape");
  text_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type_name(type));
  current_ = name;
  current_type_ = type;
  return *this;
}

Exposition& Exposition::sample(const std::vector<std::pair<std::string, std::string>>& labels,
                               std::string_view value) {
  assert(!current_.empty() && current_type_ != Type::kHistogram);
  text_ += current_;
  if (!labels.empty()) {
    text_ += '{';
    for (size_t i = 0; i < labels.size(); ++i) {
      if (i > 0) text_ += ',';
      text_ += fmt::format("{}=\"{}\"", labels[i].first, escape_label(labels[i].second));
    }
    text_ += '}';
  }
  text_ += fmt::format(" {}\n", value);
  return *this;
}

Exposition& Exposition::histogram(const Histogram& h) {
  assert(!current_.empty() && current_type_ == Type::kHistogram);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < h.bounds().size(); ++i) {
    cumulative += h.counts()[i];
    text_ += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", current_, h.bounds()[i], cumulative);
  }
  cumulative += h.counts().back();
  text_ += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n", current_, cumulative);
  text_ += fmt::format("{}_sum {}\n", current_, h.sum());
  text_ += fmt::format("{}_count {}\n", current_, h.count());
  return *this;
}

void CounterFamily::add(const LabelValues& labels, uint64_t n) {
  assert(labels.size() == names_.size());
  std::lock_guard lock(*mu_);
  values_[labels] += n;
}

void HistogramFamily::observe(double value) {
  std::lock_guard lock(*mu_);
  histogram_.observe(value);
}

CounterFamily& Registry::counter(std::string name, std::string help, std::vector<std::string> label_names) {
  std::lock_guard lock(mu_);
  Entry e{std::move(name), std::move(help), nullptr, nullptr};
  e.counter.reset(new CounterFamily(&mu_, std::move(label_names)));
  entries_.push_back(std::move(e));
  return *entries_.back().counter;
}

HistogramFamily& Registry::histogram(std::string name, std::string help, std::vector<double> bounds) {
  std::lock_guard lock(mu_);
  Entry e{std::move(name), std::move(help), nullptr, nullptr};
  e.histogram.reset(new HistogramFamily(&mu_, std::move(bounds)));
  entries_.push_back(std::move(e));
  return *entries_.back().histogram;
}

void Registry::render(Exposition& out) const {
  std::lock_guard lock(mu_);
  for (const Entry& e : entries_) {
    if (e.histogram) {
      out.family(e.name, Type::kHistogram, e.help).histogram(e.histogram->histogram_);
      continue;
    }
    out.family(e.name, Type::kCounter, e.help);
    const CounterFamily& c = *e.counter;
    // A family without labels has its one sample from the start (0); a labelled one has a sample per label set
    // seen.
    if (c.names_.empty() && c.values_.empty()) out.sample(uint64_t{0});
    for (const auto& [values, n] : c.values_) {
      std::vector<std::pair<std::string, std::string>> labels;
      for (size_t i = 0; i < values.size(); ++i) labels.emplace_back(c.names_[i], values[i]);
      out.sample(labels, Exposition::format_value(n));
    }
  }
}

}  // namespace keel::server::prometheus
