// TokenChooser: the one stage that turns a step's logits into tokens (vLLM's sampler with its logits processors).
// Every command that generates — keel serve, generate, run, bench — chooses through it, by way of ModelRunner.
//
// One row (a sequence that samples this step) with its Request's SamplingParams and history (prompt + generated):
//   1. logit_bias: l[t] += bias for each (t, bias);
//   2. penalties over the history: repetition (HF: a positive logit divided by it, a negative one multiplied),
//      then l[t] -= frequency_penalty * count(t) + presence_penalty for every token t the history holds;
//   3. the mask (Request::mask, a grammar's hook, a bitset): a token it disallows gets -inf;
//   4. the draw of backend/sampling.h numbered by the tokens the sequence has generated so far (greedy at
//      temperature 0): the same token on every backend, alone or in any batch, for a given seed.
// Logprobs are of the model's own distribution (log-softmax of the raw logits), before 1-3.
//
// Where: a row with none of 1-3 and no logprobs is plain. When every row of a step is plain the logits stay on the
// device and the backend chooses (Backend::argmax_rows when all are greedy, else Backend::sample_rows): only one id
// per row leaves it. Otherwise the step's logits come to the host and every row is chosen here, by the same rules.
//
// Speculative decoding's entry: verify() takes several candidate tokens of one row and the logits after each,
// and returns what choosing one token at a time would have returned.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "backend/sampling.h"
#include "engine/request.h"

namespace keel::engine {

// One row to choose a token for.
struct ChoiceRow {
  const SamplingParams* params = nullptr;
  const std::vector<int32_t>* history = nullptr;  // the prompt, then the tokens generated so far
  int prompt_len = 0;
  uint64_t counter = 0;   // the draw's number: the tokens the sequence has generated so far
  int top_logprobs = -1;  // as Request::top_logprobs
  TokenMask* mask = nullptr;
  // mask's bits for this choice when already filled (ModelRunner fills them while the forward runs); null: the
  // chooser asks mask itself.
  const uint32_t* mask_bits = nullptr;
};

struct Choice {
  int32_t token = -1;
  TokenLogprob chosen;            // with top_logprobs >= 0
  std::vector<TokenLogprob> top;  // the top_logprobs most likely, most likely first
};

// Where a step's rows are chosen (see above).
enum class ChoiceSite {
  kDeviceGreedy,  // every row plain and greedy: Model::forward_greedy
  kDeviceSample,  // every row plain: Model::forward_sample
  kHost,          // Model::forward's logits, then TokenChooser::choose
};

class TokenChooser {
 public:
  static bool plain(const ChoiceRow& row);
  // Where `rows` are chosen, given what the model can do on the device (Model::greedy_on_device,
  // sample_on_device).
  static ChoiceSite site(std::span<const ChoiceRow> rows, bool greedy_on_device, bool sample_on_device);
  // The backend's draw for a plain row (step 4 alone).
  static backend::SampleParams draw_params(const ChoiceRow& row);

  // Steps 1-4 (and the logprobs) for one row of `vocab` logits.
  Choice choose(const float* logits, int vocab, const ChoiceRow& row);
  // The logprob of `token` under the raw logits' distribution, and the `top` most likely (most likely first,
  // the lower id first on ties): what choose() reports, and prompt logprobs.
  void logprobs(const float* logits, int vocab, int32_t token, int top, TokenLogprob* chosen,
                std::vector<TokenLogprob>* top_out);

  // Speculative decoding: logits holds draft.size() + 1 rows, row i the logits after the row's history followed
  // by draft[0, i). Returns the tokens one-at-a-time choosing gives: draft's longest prefix each of whose tokens
  // is what its row chooses (the draw numbered as if generated in turn), then the choice of the first row that
  // disagrees (or of the last row). Between 1 and draft.size() + 1 tokens; never different from not speculating.
  std::vector<int32_t> verify(const float* logits, int vocab, const ChoiceRow& row, std::span<const int32_t> draft);

 private:
  // Steps 1-3 into processed_ (or the logits themselves when the row has none of them).
  const float* process(const float* logits, int vocab, const ChoiceRow& row);

  std::vector<float> processed_;
  std::vector<uint32_t> allowed_;
  std::vector<int32_t> counts_;
  std::vector<int32_t> order_;
  std::vector<int32_t> verify_history_;
  backend::sampling::SampleScratch scratch_;
};

}  // namespace keel::engine
