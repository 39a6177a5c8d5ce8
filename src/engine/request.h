// The types between the engine and whoever drives it (the server, keel generate/run/bench): what a request asks
// for, what its callback receives, how it ended, and the engine's counters. One set, owned by the engine; the
// server uses them directly. The engine works in token ids only; text belongs to the server.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"

namespace keel::engine {

// How a request's tokens are chosen (engine/token_chooser.h applies them, in the order it documents).
struct SamplingParams {
  float temperature = 1.0f;  // 0: greedy (argmax, the lowest id on ties)
  float top_p = 1.0f;
  int top_k = 0;         // 0: off
  float min_p = 0.0f;    // 0: off
  float repetition_penalty = 1.0f;
  float frequency_penalty = 0.0f;
  float presence_penalty = 0.0f;
  uint64_t seed = 0;
  // Added to the named tokens' logits before anything else (OpenAI's logit_bias): (token id, bias) pairs, each
  // id once. -100 all but bans a token, +100 all but forces it.
  std::vector<std::pair<int32_t, float>> logit_bias;

  // Ranges, and logit_bias's ids non-negative and once each (Engine::submit checks them against the vocabulary).
  Status validate() const;
  bool penalised() const {
    return repetition_penalty != 1.0f || frequency_penalty != 0.0f || presence_penalty != 0.0f;
  }
};

// A constraint on which tokens may come next (a grammar, a JSON schema): before each of its request's choices
// the token chooser gets the row's mask from it, and a token it disallows is never chosen. fill runs once per
// generated token, on the engine's mask thread while the step's forward runs (ModelRunner), or on the engine
// thread when speculative verification needs the mask after each draft token; never twice at once for one request.
class TokenMask {
 public:
  virtual ~TokenMask() = default;
  // allowed: one bit per token, (vocab + 31) / 32 words, bit t % 32 of word t / 32 set when token t may follow
  // `generated` (the tokens this request has generated so far; the previous call's plus one, as a rule, but a
  // preempted or speculating request may go back). fill writes every word. A mask that allows nothing leaves the
  // row unmasked.
  virtual void fill(std::span<const int32_t> generated, std::span<uint32_t> allowed) = 0;
};

// Words of a TokenMask's bitset for `vocab` tokens.
inline size_t mask_words(int vocab) { return (static_cast<size_t>(vocab) + 31) / 32; }

struct Request {
  std::vector<int32_t> prompt;
  int max_tokens = 16;
  SamplingParams sampling;
  std::vector<int32_t> stop_token_ids;  // finish (reason stop) after emitting one of these
  bool ignore_eos = false;              // else the model's eos ids are stop ids too
  int top_logprobs = -1;                // -1: no logprobs; 0: the chosen token's; n: and the n most likely
  // Prompt logprobs (/v1/completions echo with logprobs): -1 none; k >= 0: the logprob of every prompt token
  // after the first under the model's distribution at the position before it, and the k most likely there,
  // handed out with the first event. Such a request computes its whole prompt: no cached prefix is reused.
  int prompt_logprobs = -1;
  // Mixed into the first block's key (cache::salt_key): requests share cached prefixes only with requests of
  // the same salt. Empty: no salt.
  std::string cache_salt;
  std::shared_ptr<TokenMask> mask;      // null: every token allowed
  // n > 1 (several completions of one prompt): the id of the request submitted first with the same prompt and
  // salt. This one waits to be admitted until that one's prompt is computed (or it is gone), so the prefix cache
  // hands it the prompt's full blocks, shared by refcount, and it computes only the tokens after them (fewer than
  // a block). 0: none.
  uint64_t prefill_after = 0;
};

// The context check, keel's one, run at admission (Engine::submit) before anything is queued or allocated:
// kInvalidArgument when prompt + max_tokens exceeds max_model_len (OpenAI's wording, which clients match: "This
// model's maximum context length is N tokens. However, you requested T tokens (P in the prompt, M for the
// completion)...") or what a KV pool of kv_capacity tokens can ever hold.
Status check_context(int prompt_tokens, int max_tokens, int max_model_len, int64_t kv_capacity);

enum class FinishReason { kNone, kStop, kLength, kCancelled, kError };
const char* finish_reason_name(FinishReason r);  // "stop", "length", "cancelled", "error"

struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0.0f;
};

// One prompt token's logprob (Request::prompt_logprobs).
struct PromptLogprob {
  TokenLogprob chosen;            // the prompt's token
  std::vector<TokenLogprob> top;  // the k most likely at its position, most likely first
};

// What a request's callback receives, on the engine thread; it must return quickly and never block. One event
// per generated token; the last carries the finish reason (and may carry no token).
struct Event {
  uint64_t request_id = 0;
  int32_t token = -1;  // -1 when the event carries no token (error, cancellation)
  TokenLogprob chosen;
  std::vector<TokenLogprob> top;  // top_logprobs alternatives, most likely first
  // With Request::prompt_logprobs, on the first event only: prompt tokens 1..n-1 in order (the first token has
  // no position before it).
  std::vector<PromptLogprob> prompt_logprobs;
  FinishReason finish = FinishReason::kNone;  // set on the request's last event
  std::string error;                          // with kError
  int prompt_tokens = 0;
  int completion_tokens = 0;  // including this event's token
  int cached_tokens = 0;      // prompt tokens whose KV came from the prefix cache (on every event)
};
using EventCallback = std::function<void(const Event&)>;

struct EngineStats {
  int running = 0;
  int waiting = 0;
  int kv_blocks_used = 0;
  int kv_blocks_total = 0;
  uint64_t steps = 0;
  // Where a step's time goes: step_seconds from scheduling to the events ready to hand out, forward_seconds the
  // model's forward within it (the device's work and the wait for its tokens), batch_tokens the tokens computed.
  double step_seconds = 0;
  double forward_seconds = 0;
  uint64_t batch_tokens = 0;
  uint64_t prompt_tokens = 0;      // processed in total
  uint64_t generated_tokens = 0;   // in total
  uint64_t preemptions = 0;
  uint64_t requests_finished = 0;
  // Prefix cache, device tier. Blocks hold kv_block_size tokens and kv_block_bytes bytes (all layers, K and V).
  int kv_blocks_cached = 0;  // unused blocks kept for reuse (a subset of the pool, not of kv_blocks_used)
  int kv_block_size = 0;
  uint64_t kv_block_bytes = 0;
  uint64_t prefix_cache_hit_blocks = 0;   // full prompt blocks reused at admission
  uint64_t prefix_cache_miss_blocks = 0;  // full prompt blocks (excluding the last token's) computed instead
  uint64_t prefix_cache_evictions = 0;    // cached blocks whose memory was taken for new KV
  // Host tier (all 0 without one).
  uint64_t hot_cache_hit_blocks = 0;  // full prompt blocks copied up from host RAM at admission
  uint64_t hot_cache_stores = 0;      // blocks evicted from the device and copied down
  uint64_t hot_cache_evictions = 0;   // blocks the host tier dropped to make room
  uint64_t hot_cache_blocks = 0;      // blocks held now
  uint64_t hot_cache_capacity_blocks = 0;
  // SSD tier (all 0 without one).
  uint64_t ssd_cache_hit_blocks = 0;   // full prompt blocks read from the SSD at admission
  uint64_t ssd_cache_stores = 0;       // blocks queued for writing
  uint64_t ssd_cache_write_through = 0;  // ... of which queued when computed (write-through)
  uint64_t ssd_cache_written = 0;      // ... written, fsynced and visible
  uint64_t ssd_cache_dropped = 0;      // ... dropped (queue full, writing paused, write error)
  uint64_t ssd_cache_evictions = 0;    // blocks in segments deleted to stay within the cap
  uint64_t ssd_cache_corrupt = 0;      // records skipped at open or on reading: never served
  uint64_t ssd_cache_blocks = 0;       // blocks indexed now
  uint64_t ssd_cache_bytes = 0;        // bytes of keel's segment files
  uint64_t ssd_cache_max_bytes = 0;
  // Backend allocations since the end of the first step (warm-up); must stay 0 while serving.
  uint64_t allocations_after_warmup = 0;
};

}  // namespace keel::engine
