#include "engine/token_chooser.h"

#include <algorithm>
#include <cmath>

namespace keel::engine {

bool TokenChooser::plain(const ChoiceRow& row) {
  const SamplingParams& p = *row.params;
  return p.logit_bias.empty() && !p.penalised() && row.mask == nullptr && row.top_logprobs < 0;
}

ChoiceSite TokenChooser::site(std::span<const ChoiceRow> rows, bool greedy_on_device, bool sample_on_device) {
  bool all_plain = true, all_greedy = true;
  for (const ChoiceRow& r : rows) {
    all_plain &= plain(r);
    all_greedy &= r.params->temperature == 0.0f;
  }
  if (all_plain && all_greedy && greedy_on_device) return ChoiceSite::kDeviceGreedy;
  if (all_plain && sample_on_device) return ChoiceSite::kDeviceSample;
  return ChoiceSite::kHost;
}

backend::SampleParams TokenChooser::draw_params(const ChoiceRow& row) {
  const SamplingParams& p = *row.params;
  backend::SampleParams s;
  s.temperature = p.temperature;
  s.top_k = p.top_k;
  s.top_p = p.top_p;
  s.min_p = p.min_p;
  s.seed = p.seed;
  s.counter = row.counter;
  return s;
}

const float* TokenChooser::process(const float* logits, int vocab, const ChoiceRow& row) {
  const SamplingParams& p = *row.params;
  if (p.logit_bias.empty() && !p.penalised() && row.mask == nullptr) return logits;
  processed_.assign(logits, logits + vocab);
  for (auto [token, bias] : p.logit_bias)
    if (token < vocab) processed_[token] += bias;
  if (p.penalised()) {
    counts_.resize(vocab);
    const std::vector<int32_t>& history = *row.history;
    for (int32_t t : history)
      if (t >= 0 && t < vocab) counts_[t]++;
    for (int32_t t : history) {
      if (t < 0 || t >= vocab || counts_[t] == 0) continue;  // out of range, or already penalised
      float& x = processed_[t];
      const float rp = p.repetition_penalty;
      if (rp != 1.0f) x = x > 0 ? x / rp : x * rp;
      x -= p.frequency_penalty * counts_[t] + p.presence_penalty;
      counts_[t] = 0;
    }
  }
  if (row.mask != nullptr) {
    const size_t words = mask_words(vocab);
    const uint32_t* bits = row.mask_bits;
    if (bits == nullptr) {
      allowed_.assign(words, 0);
      const std::span<const int32_t> generated(row.history->data() + row.prompt_len,
                                               row.history->size() - static_cast<size_t>(row.prompt_len));
      row.mask->fill(generated, allowed_);
      bits = allowed_.data();
    }
    if (std::any_of(bits, bits + words, [](uint32_t w) { return w != 0; }))
      for (size_t w = 0; w < words; w++) {
        if (bits[w] == ~0u) continue;  // a word of allowed tokens: most of the vocabulary inside a JSON string
        const int end = std::min<int>(vocab, static_cast<int>(w * 32 + 32));
        for (int v = static_cast<int>(w * 32); v < end; v++)
          if (((bits[w] >> (v % 32)) & 1u) == 0) processed_[v] = -INFINITY;
      }
  }
  return processed_.data();
}

Choice TokenChooser::choose(const float* logits, int vocab, const ChoiceRow& row) {
  Choice c;
  const float* l = process(logits, vocab, row);
  c.token = backend::sampling::sample_row(l, vocab, draw_params(row), scratch_);
  if (row.top_logprobs < 0) return c;
  logprobs(logits, vocab, c.token, row.top_logprobs, &c.chosen, &c.top);
  return c;
}

void TokenChooser::logprobs(const float* logits, int vocab, int32_t token, int top, TokenLogprob* chosen,
                            std::vector<TokenLogprob>* top_out) {
  // Log-softmax of the model's raw distribution.
  const float mx = *std::max_element(logits, logits + vocab);
  double sum = 0;
  for (int v = 0; v < vocab; v++) sum += std::exp(static_cast<double>(logits[v]) - mx);
  const float lse = mx + static_cast<float>(std::log(sum));
  *chosen = {token, logits[token] - lse};
  top_out->clear();
  order_.resize(vocab);
  for (int v = 0; v < vocab; v++) order_[v] = v;
  const int k = std::min(top, vocab);
  std::partial_sort(order_.begin(), order_.begin() + k, order_.end(), [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  for (int i = 0; i < k; i++) top_out->push_back({order_[i], logits[order_[i]] - lse});
}

std::vector<int32_t> TokenChooser::verify(const float* logits, int vocab, const ChoiceRow& row,
                                          std::span<const int32_t> draft) {
  verify_history_ = *row.history;
  ChoiceRow at = row;
  at.history = &verify_history_;
  at.top_logprobs = -1;
  at.mask_bits = nullptr;  // bits filled ahead are the first position's; each draft position asks the mask
  std::vector<int32_t> out;
  for (size_t i = 0; i <= draft.size(); i++) {
    const int32_t token = choose(logits + i * static_cast<size_t>(vocab), vocab, at).token;
    out.push_back(token);
    if (i == draft.size() || token != draft[i]) break;
    verify_history_.push_back(token);
    at.counter++;
  }
  return out;
}

}  // namespace keel::engine
