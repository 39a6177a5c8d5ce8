#include "engine/sampler.h"

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

backend::SampleParams sample_params(const SamplingParams& p, uint64_t counter) {
  backend::SampleParams s;
  s.temperature = p.temperature;
  s.top_k = p.top_k;
  s.top_p = p.top_p;
  s.min_p = p.min_p;
  s.seed = p.seed;
  s.counter = counter;
  return s;
}

int32_t Sampler::sample(const float* logits, int vocab, const std::vector<int32_t>& history, uint64_t counter) {
  const float* l = logits;
  if (params_.penalised()) {
    penalised_.assign(logits, logits + vocab);
    std::unordered_map<int32_t, int> counts;
    for (int32_t t : history)
      if (t >= 0 && t < vocab) counts[t]++;
    for (auto [t, n] : counts) {
      float& x = penalised_[t];
      const float rp = params_.repetition_penalty;
      if (rp != 1.0f) x = x > 0 ? x / rp : x * rp;
      x -= params_.frequency_penalty * n + params_.presence_penalty;
    }
    l = penalised_.data();
  }
  return backend::sampling::sample_row(l, vocab, sample_params(params_, counter), scratch_);
}

}  // namespace keel::engine
