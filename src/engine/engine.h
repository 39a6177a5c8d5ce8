// Engine: continuous batching over a paged KV cache (vLLM style). Requests arrive from any thread; one engine
// thread runs steps: each step the Scheduler picks the running decodes plus prefill chunks within the token
// budget, the model runs them as one flattened batch, and each request's new token goes to its callback.
//
// The engine works in token ids only. Text (detokenization, stop strings, chat templates) belongs to the
// server, which cancels a request when one of its stop strings appears.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "cache/block_hash.h"
#include "engine/follower.h"
#include "engine/sampler.h"
#include "engine/scheduler.h"
#include "model/model.h"

namespace keel::engine {

enum class FinishReason { kNone, kStop, kLength, kCancelled, kError };
const char* finish_reason_name(FinishReason r);  // "stop", "length", "cancelled", "error"

struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0.0f;
};

struct Request {
  std::vector<int32_t> prompt;
  int max_tokens = 16;
  SamplingParams sampling;
  std::vector<int32_t> stop_token_ids;  // finish (reason stop) after emitting one of these
  bool ignore_eos = false;              // else the model's eos ids are stop ids too
  int top_logprobs = -1;                // -1: no logprobs; 0: the chosen token's; n: and the n most likely
  // Mixed into the first block's key (cache::salt_key): requests share cached prefixes only with requests of
  // the same salt. Empty: no salt.
  std::string cache_salt;
};

// What a request's callback receives, on the engine thread; it must return quickly and never block.
struct Event {
  uint64_t request_id = 0;
  int32_t token = -1;  // -1 when the event carries no token (error, cancellation)
  TokenLogprob chosen;
  std::vector<TokenLogprob> top;  // top_logprobs alternatives, most likely first
  FinishReason finish = FinishReason::kNone;  // set on the request's last event
  std::string error;                          // with kError
  int prompt_tokens = 0;
  int completion_tokens = 0;  // including this event's token
  int cached_tokens = 0;      // prompt tokens whose KV came from the prefix cache (on every event)
};
using EventCallback = std::function<void(const Event&)>;

struct EngineOptions {
  int max_num_seqs = 64;
  int max_num_batched_tokens = 512;  // per step: decodes + prefill chunks
  int max_model_len = 0;             // 0: the model's context
  // Prefix caching: full KV blocks stay cached after use, and a prompt that starts with cached blocks reuses
  // them instead of recomputing them (see Scheduler). Blocks are named under `fingerprint`; a zero one (the
  // default) is derived from the model's config, dtype and KV layout (config_fingerprint), which suffices
  // while blocks never leave this process. Tiers that persist need weights_fingerprint (engine/fingerprint.h).
  bool prefix_caching = true;
  cache::ModelFingerprint fingerprint;
  // The host RAM tier below the device pool (--hot-cache-max-size), or null. Not owned; the caller creates it
  // (cache::HotTier::create(bytes, kv_block_bytes(model)), pinned memory on CUDA) so that a failure is its
  // error to report. Used only with prefix caching and a block_bytes() of kv_block_bytes(model), on the engine
  // thread.
  cache::HotTier* hot_tier = nullptr;
  // The SSD tier below the host tier (--ssd-cache-dir), or null. Not owned; the caller opens it with
  // options.fingerprint = weights_fingerprint(...) (a zero fingerprint here is not enough: blocks on disk
  // outlive the process) and max_payload_bytes >= kv_block_bytes(model), and destroys it after the engine so
  // that it writes its checkpoint. Left out unless its fingerprint is the engine's.
  cache::SsdTier* ssd_tier = nullptr;
  // --ssd-write-policy: through (a block is queued for the SSD once full and computed, so it survives kill -9)
  // or back (only blocks the tiers above give up go down).
  cache::SsdWritePolicy ssd_write_policy = cache::SsdWritePolicy::kThrough;
  // At destruction (a clean shutdown), after the engine thread stops: queue for the SSD every cached block of
  // the device and the host tier that it lacks, and wait for the queue (cache::BlockManager::persist_to_ssd).
  bool persist_cache_on_shutdown = false;
  // Tensor parallel: this engine is rank 0 of a group; `leader` sends each step's plan to the other ranks
  // (engine/follower.h) before the forward. Not owned. A failed step then fails the whole engine (failure()).
  StepLeader* leader = nullptr;
};

// Bytes of one KV block over all layers, K and V: what each hot tier slot holds.
size_t kv_block_bytes(const model::Model& model);

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

class Engine {
 public:
  Engine(model::Model* model, const EngineOptions& options);
  ~Engine();  // stops the engine thread; unfinished requests get kCancelled

  // Validates and queues; the callback then receives one event per generated token, the last with its
  // finish reason. Fails at once (without queueing) for an empty prompt, bad sampling parameters, or a
  // prompt + max_tokens that the context or the KV pool can never hold (code kInvalidArgument; the message
  // carries the numbers).
  Result<uint64_t> submit(Request request, EventCallback callback);
  // Frees the request's blocks within one step; its callback gets a final kCancelled event.
  void cancel(uint64_t request_id);
  // Stops admitting (submit fails with kResourceExhausted) and lets running requests finish.
  void drain();

  // Moves every cached device block no request uses down to the host tier (or the SSD without one) between
  // two steps, as memory pressure would, and returns how many moved; waits for the engine thread. For
  // benchmarks (keel bench cache: warm from RAM) and tests.
  int evict_prefix_cache();

  EngineStats stats() const;
  // Why the engine stopped for good ("" while it runs): a step of a tensor-parallel group failed (a rank died,
  // hung or reported an error). Every request then got a kError event and submit fails.
  std::string failure() const;
  const model::Model& model() const { return *model_; }

 private:
  void loop();
  void publish_stats(uint64_t prompt_tokens, uint64_t generated, uint64_t finished, bool stepped);
  // A step's timing (step_seconds, forward_seconds, batch_tokens), before publish_stats counts the step.
  void add_step_time(double step_seconds, double forward_seconds, uint64_t batch_tokens);

  model::Model* model_;
  EngineOptions options_;
  Scheduler scheduler_;
  std::unique_ptr<KvBlockCopier> copier_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<uint64_t, std::pair<Request, EventCallback>>> incoming_;
  std::vector<uint64_t> cancelled_;
  std::vector<std::promise<int>> evictions_;  // evict_prefix_cache() calls waiting for the engine thread
  std::atomic<uint64_t> next_id_{1};
  bool stopping_ = false;
  bool draining_ = false;
  std::string failure_;
  EngineStats stats_;
  uint64_t warm_allocations_ = 0;  // Backend::allocations() after the first step
  std::thread thread_;
};

}  // namespace keel::engine
