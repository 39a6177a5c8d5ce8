// Engine: continuous batching over a paged KV cache (vLLM style). Requests arrive from any thread; one engine
// thread runs steps: each step the Scheduler picks the running decodes plus prefill chunks within the token
// budget, the ModelRunner runs them as one flattened batch and the TokenChooser picks each sampling row's token,
// and each request's new token goes to its callback. keel serve, generate, run and bench all drive this loop.
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
#include "env/env.h"
#include "engine/model_runner.h"
#include "engine/request.h"
#include "engine/scheduler.h"
#include "model/model.h"

namespace keel::engine {

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
  // The clock of the step timings (EngineStats::step_seconds, forward_seconds). Not owned; null: Env::posix().
  env::Env* env = nullptr;
};

// Bytes of one KV block over all layers, K and V: what each hot tier slot holds.
size_t kv_block_bytes(const model::Model& model);

class Engine {
 public:
  Engine(model::Model* model, const EngineOptions& options);
  ~Engine();  // stops the engine thread; unfinished requests get kCancelled

  // Admission: validates and queues; the callback then receives one event per generated token, the last with
  // its finish reason. Fails at once (without queueing, code kInvalidArgument) for an empty prompt, a token id
  // outside the vocabulary, bad sampling parameters, or a prompt + max_tokens that the context (max_model_len())
  // or the KV pool can never hold: keel's one context check, whose message carries the prompt's tokens,
  // max_tokens and the limit. kResourceExhausted while draining.
  Result<uint64_t> submit(Request request, EventCallback callback);
  // One request to its end, for a caller without a thread of its own to receive events (keel generate, run):
  // submits it, hands each token to on_token on the calling thread (false cancels the rest) and returns the
  // tokens, or the final event's error.
  Result<std::vector<int32_t>> generate(Request request, const std::function<bool(int32_t)>& on_token = nullptr);
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
  // The longest prompt + completion a request may have: --max-model-len, at most the model's context.
  int max_model_len() const { return options_.max_model_len; }

 private:
  void loop();
  void publish_stats(uint64_t prompt_tokens, uint64_t generated, uint64_t finished, bool stepped);
  // A step's timing (step_seconds, forward_seconds, batch_tokens), before publish_stats counts the step.
  void add_step_time(double step_seconds, double forward_seconds, uint64_t batch_tokens);
  env::Env* clock() const { return options_.env != nullptr ? options_.env : env::Env::posix(); }

  model::Model* model_;
  EngineOptions options_;
  Scheduler scheduler_;
  ModelRunner runner_;
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
