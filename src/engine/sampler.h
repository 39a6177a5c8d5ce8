// Sampler: turns one row of logits into a token. Temperature 0 is greedy (argmax, lowest id on ties), so
// a request samples the same tokens alone or in a batch.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "base/status.h"

namespace keel::engine {

struct SamplingParams {
  float temperature = 1.0f;
  float top_p = 1.0f;
  int top_k = 0;         // 0: off
  float min_p = 0.0f;    // 0: off
  float repetition_penalty = 1.0f;
  float frequency_penalty = 0.0f;
  float presence_penalty = 0.0f;
  uint64_t seed = 0;

  Status validate() const;
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);
  // `history`: the prompt and generated tokens so far, for the penalties.
  int32_t sample(const float* logits, int vocab, const std::vector<int32_t>& history);

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<float> scratch_;
  std::vector<int32_t> order_;
};

}  // namespace keel::engine
