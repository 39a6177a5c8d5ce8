#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_map>

namespace keel::engine {

Status SamplingParams::validate() const {
  if (!(temperature >= 0.0f)) return invalid_argument("temperature={} must be >= 0", temperature);
  if (!(top_p > 0.0f && top_p <= 1.0f)) return invalid_argument("top_p={} must be in (0, 1]", top_p);
  if (top_k < 0) return invalid_argument("top_k={} must be >= 0", top_k);
  if (!(min_p >= 0.0f && min_p <= 1.0f)) return invalid_argument("min_p={} must be in [0, 1]", min_p);
  if (!(repetition_penalty > 0.0f)) return invalid_argument("repetition_penalty={} must be > 0", repetition_penalty);
  return Status();
}

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {}

int32_t Sampler::sample(const float* logits, int vocab, const std::vector<int32_t>& history) {
  scratch_.assign(logits, logits + vocab);
  std::vector<float>& l = scratch_;
  const bool penalised = params_.repetition_penalty != 1.0f || params_.frequency_penalty != 0.0f ||
                         params_.presence_penalty != 0.0f;
  if (penalised) {
    std::unordered_map<int32_t, int> counts;
    for (int32_t t : history)
      if (t >= 0 && t < vocab) counts[t]++;
    for (auto [t, n] : counts) {
      if (params_.repetition_penalty != 1.0f)
        l[t] = l[t] > 0 ? l[t] / params_.repetition_penalty : l[t] * params_.repetition_penalty;
      l[t] -= params_.frequency_penalty * n + params_.presence_penalty;
    }
  }
  if (params_.temperature == 0.0f) return static_cast<int32_t>(std::max_element(l.begin(), l.end()) - l.begin());

  // Softmax at temperature, then keep the top-k / top-p / min-p candidates and draw among them.
  order_.resize(vocab);
  std::iota(order_.begin(), order_.end(), 0);
  std::stable_sort(order_.begin(), order_.end(), [&](int32_t a, int32_t b) { return l[a] > l[b]; });
  int keep = params_.top_k > 0 ? std::min(params_.top_k, vocab) : vocab;
  const float mx = l[order_[0]];
  std::vector<double> p(keep);
  double sum = 0;
  for (int i = 0; i < keep; i++) sum += (p[i] = std::exp((l[order_[i]] - mx) / params_.temperature));
  double cum = 0;
  int cut = keep;
  for (int i = 0; i < keep; i++) {
    p[i] /= sum;
    if (params_.min_p > 0 && p[i] < params_.min_p * p[0]) {
      cut = std::max(1, i);
      break;
    }
    cum += p[i];
    if (cum >= params_.top_p) {
      cut = i + 1;
      break;
    }
  }
  std::discrete_distribution<int> pick(p.begin(), p.begin() + cut);
  return order_[pick(rng_)];
}

}  // namespace keel::engine
