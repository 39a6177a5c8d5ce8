// Scheduler: continuous batching with chunked prefill (vLLM style), as plain bookkeeping.
//
// Each step fills a token budget: first the running sequences (a decode is one token; a sequence still
// prefilling takes a chunk), then waiting sequences in arrival order (FIFO: a sequence that does not fit
// blocks the ones behind it; one whose prefill_after sibling is still computing the shared prompt is passed
// over, and blocks nothing). When the KV pool runs out, the newest running sequence is preempted: its
// blocks are freed and it goes back to the front of the queue to be recomputed later, tokens kept, so no
// request is ever lost.
//
// The KV blocks, the prefix cache and its tiers belong to cache::BlockManager (cache/block_manager.h): the
// scheduler asks it whether a sequence fits and hands it sequences to admit, grow and free; which sequence
// runs, waits or is preempted is decided here.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <random>
#include <vector>

#include "cache/block_manager.h"

namespace keel::engine {

// A request as the scheduler sees it. Its tokens (prompt + generated so far), block table and block hashes are
// the cache::SequenceBlocks the block manager keeps.
struct Sequence : cache::SequenceBlocks {
  Sequence(uint64_t id, std::vector<int32_t> prompt, int block_size)
      : cache::SequenceBlocks(std::move(prompt), block_size), id(id), prompt_len(static_cast<int>(tokens.size())) {}

  uint64_t id;
  int prompt_len;
  int num_computed = 0;  // leading tokens whose KV is in the cache
  int num_preemptions = 0;
  int cached_tokens = 0;  // prompt tokens the first admission found cached (what usage reports)
  uint64_t prefill_after = 0;  // Request::prefill_after: not admitted while that sequence's prompt is computing
  // Hybrid models: the slot of the model's recurrent-state pool this sequence holds while it runs (-1: none).
  // Given at admission, returned at preemption (recompute starts from position 0, a zero state) and finish.
  int state_slot = -1;
  bool prompt_logits = false;  // Request::prompt_logprobs: every prompt position it computes is a logit row

  int generated() const { return static_cast<int>(tokens.size()) - prompt_len; }
};

// Tokens [begin, end) of `seq` run this step; when end reaches the sequence's length, a token is sampled.
struct Chunk {
  Sequence* seq = nullptr;
  int begin = 0;
  int end = 0;
  bool samples() const { return end == static_cast<int>(seq->tokens.size()); }
};

using KvBlockCopier = cache::KvBlockCopier;

struct StepPlan {
  std::vector<Chunk> chunks;
  std::vector<uint64_t> preempted;
  int num_tokens() const {
    int n = 0;
    for (auto& c : chunks) n += c.end - c.begin;
    return n;
  }
};

class Scheduler {
 public:
  // With a fingerprint, full blocks are cached for prefix reuse (see cache::BlockManager); without, blocks are
  // freed at once.
  Scheduler(int num_blocks, int block_size, int max_num_seqs, int max_num_batched_tokens,
            std::optional<cache::ModelFingerprint> prefix_caching = std::nullopt);

  // The tiers below the device pool (cache::BlockManager::set_hot_tier / set_ssd_tier).
  void set_hot_tier(cache::HotTier* tier, KvBlockCopier* copier) { blocks_.set_hot_tier(tier, copier); }
  void set_ssd_tier(cache::SsdTier* tier, KvBlockCopier* copier, size_t block_bytes,
                    cache::SsdWritePolicy policy = cache::SsdWritePolicy::kThrough) {
    blocks_.set_ssd_tier(tier, copier, block_bytes, policy);
  }
  // Moves every cached block no sequence uses down a tier, as memory pressure would; returns how many left the
  // device. For benchmarks and tests.
  int evict_cached() { return blocks_.evict_cached(); }

  // A hybrid model's recurrent-state pool of `slots` (Model::recurrent_state_slots()): every running sequence holds
  // one, so at most `slots` run at once. Before the first add().
  void set_state_slots(int slots);
  // Logit rows one step may ask for (the model's logits buffer; 0: no limit). Each sampling chunk takes one; a
  // prompt_logits sequence's prefill chunks take one per prompt position and are cut to what is left.
  void set_max_logit_rows(int rows) { max_logit_rows_ = rows; }

  void add(std::unique_ptr<Sequence> seq);
  // Plans one step and reserves its KV slots. After the forward pass, call `advance` with the plan.
  StepPlan schedule();
  // Marks the plan's chunks computed.
  void advance(const StepPlan& plan);
  // Removes a sequence (finished or cancelled) and frees its blocks; false if unknown.
  bool finish(uint64_t id);
  Sequence* find(uint64_t id);

  int num_running() const { return static_cast<int>(running_.size()); }
  int num_waiting() const { return static_cast<int>(waiting_.size()); }
  bool idle() const { return running_.empty() && waiting_.empty(); }
  uint64_t preemptions() const { return preemptions_; }
  cache::BlockManager& block_manager() { return blocks_; }
  const cache::BlockManager& block_manager() const { return blocks_; }
  const kv::BlockPool& pool() const { return blocks_.pool(); }
  // Null without prefix caching.
  const cache::PrefixIndex* prefix_index() const { return blocks_.prefix_index(); }
  using PrefixStats = cache::BlockManagerStats;
  const PrefixStats& prefix_stats() const { return blocks_.stats(); }
  // Most tokens one sequence can ever hold: the whole pool.
  int capacity_tokens() const { return blocks_.capacity_tokens(); }

 private:
  void preempt(Sequence* seq);
  // Whether `seq` waits for its prefill_after sibling, which exists and has not computed its prompt yet.
  bool waits_for_sibling(Sequence& seq);
  // For a sequence with no blocks: admits it with its cached prefix if the rest of `budget` tokens then fits.
  // Returns the tokens of the planned chunk after the cached prefix, or -1 when it does not fit (nothing taken).
  int admit(Sequence* seq, int budget);

  cache::BlockManager blocks_;
  int max_num_seqs_;
  int max_num_batched_tokens_;
  int max_logit_rows_ = 0;
  std::vector<std::unique_ptr<Sequence>> running_;  // arrival order: newest last
  std::deque<std::unique_ptr<Sequence>> waiting_;
  uint64_t preemptions_ = 0;
  std::vector<int> free_state_slots_;  // empty without a recurrent-state pool
  bool has_state_slots_ = false;
  void release_state_slot(Sequence* seq);
};

}  // namespace keel::engine
