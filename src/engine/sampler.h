// Sampler: turns one row of logits into a token on the host, for requests whose draw needs the host (penalties
// look at the history). After the penalties it is backend/sampling.h's draw, the one every backend runs: a
// request samples the same tokens alone or in a batch, on the host or on a device, for a given seed.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/sampling.h"
#include "base/status.h"

namespace keel::engine {

struct SamplingParams {
  float temperature = 1.0f;  // 0: greedy (argmax, the lowest id on ties)
  float top_p = 1.0f;
  int top_k = 0;         // 0: off
  float min_p = 0.0f;    // 0: off
  float repetition_penalty = 1.0f;
  float frequency_penalty = 0.0f;
  float presence_penalty = 0.0f;
  uint64_t seed = 0;

  Status validate() const;
  bool penalised() const {
    return repetition_penalty != 1.0f || frequency_penalty != 0.0f || presence_penalty != 0.0f;
  }
};

// The draw's parameters for a sequence that has generated `counter` tokens so far (its next token's draw).
backend::SampleParams sample_params(const SamplingParams& p, uint64_t counter);

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params) : params_(params) {}
  // The penalties over `history` (the prompt and the tokens generated so far), then the draw numbered `counter`.
  int32_t sample(const float* logits, int vocab, const std::vector<int32_t>& history, uint64_t counter);
  // The same with counter = the calls made so far: the n-th call draws the n-th generated token, as the engine
  // numbers them.
  int32_t sample(const float* logits, int vocab, const std::vector<int32_t>& history) {
    return sample(logits, vocab, history, calls_++);
  }

 private:
  SamplingParams params_;
  uint64_t calls_ = 0;
  std::vector<float> penalised_;
  backend::sampling::SampleScratch scratch_;
};

}  // namespace keel::engine
