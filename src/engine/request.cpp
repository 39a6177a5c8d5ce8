#include "engine/request.h"

#include <cmath>

namespace keel::engine {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kNone: return "none";
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kCancelled: return "cancelled";
    case FinishReason::kError: return "error";
  }
  return "?";
}

Status SamplingParams::validate() const {
  if (!(temperature >= 0.0f)) return invalid_argument("temperature={} must be >= 0", temperature);
  if (!(top_p > 0.0f && top_p <= 1.0f)) return invalid_argument("top_p={} must be in (0, 1]", top_p);
  if (top_k < 0) return invalid_argument("top_k={} must be >= 0", top_k);
  if (!(min_p >= 0.0f && min_p <= 1.0f)) return invalid_argument("min_p={} must be in [0, 1]", min_p);
  if (!(repetition_penalty > 0.0f)) return invalid_argument("repetition_penalty={} must be > 0", repetition_penalty);
  for (size_t i = 0; i < logit_bias.size(); i++) {
    const auto [token, bias] = logit_bias[i];
    if (token < 0) return invalid_argument("logit_bias: token id {} is negative", token);
    if (!std::isfinite(bias)) return invalid_argument("logit_bias: the bias of token {} is not finite", token);
    for (size_t j = 0; j < i; j++)
      if (logit_bias[j].first == token) return invalid_argument("logit_bias: token id {} appears twice", token);
  }
  return Status();
}

Status check_context(int prompt, int max_tokens, int max_model_len, int64_t kv_capacity) {
  const int64_t total = static_cast<int64_t>(prompt) + max_tokens;
  if (total > max_model_len)
    return invalid_argument(
        "This model's maximum context length is {} tokens. However, you requested {} tokens ({} in the prompt, "
        "{} for the completion). Please reduce the length of the prompt or max_tokens.",
        max_model_len, total, prompt, max_tokens);
  if (total > kv_capacity)
    return invalid_argument(
        "The KV cache holds at most {} tokens, but this request needs {} ({} in the prompt, {} for the "
        "completion).",
        kv_capacity, total, prompt, max_tokens);
  return Status();
}

}  // namespace keel::engine
