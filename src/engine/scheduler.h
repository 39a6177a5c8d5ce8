// Scheduler: continuous batching with chunked prefill (vLLM style), as plain bookkeeping.
//
// Each step fills a token budget: first the running sequences (a decode is one token; a sequence still
// prefilling takes a chunk), then waiting sequences in arrival order (FIFO: a sequence that does not fit
// blocks the ones behind it). When the KV pool runs out, the newest running sequence is preempted: its
// blocks are freed and it goes back to the front of the queue to be recomputed later, tokens kept, so no
// request is ever lost.
//
// Prefix caching (when given a model fingerprint): every full block whose KV is computed is entered in a
// cache::PrefixIndex under its chained hash. A block nobody references any more stays cached (kept by the
// pool) until its memory is needed, least recently released first. A sequence admitted from the queue
// starts with the longest cached run of its full blocks, capped so that its last token is still computed
// (its logits give the next token).
//
// With a host tier (cache::HotTier), eviction flows down and hits flow up: a cached block evicted from the
// device has its bytes copied into the tier first, and a prompt whose cached run continues in the tier gets
// fresh device blocks filled from it at admission. The copies are synchronous, in program order, before the
// step's forward pass, through a KvBlockCopier (the backend in the engine, a fake in tests).
//
// With an SSD tier (cache::SsdTier) below, a block the host tier drops is queued for the disk from the slot
// it leaves (never waiting: the tier drops what its queue cannot take), or, without a host tier, a block
// evicted from the device is. At admission the cached run may continue block by block in either lower tier;
// SSD blocks are read (and re-verified) into a staging buffer and copied up. A record that fails its check
// ends the run there: those tokens are computed instead.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <random>
#include <vector>

#include "cache/block_hash.h"
#include "cache/hot_tier.h"
#include "cache/prefix_index.h"
#include "cache/ssd_tier.h"
#include "engine/sampler.h"
#include "kv/block_pool.h"

namespace keel::engine {

struct Sequence {
  Sequence(uint64_t id, std::vector<int32_t> prompt, int block_size)
      : id(id), tokens(std::move(prompt)), prompt_len(static_cast<int>(tokens.size())), table(block_size) {}

  uint64_t id;
  std::vector<int32_t> tokens;  // prompt + generated so far
  int prompt_len;
  int num_computed = 0;         // leading tokens whose KV is in the cache
  kv::BlockTable table;
  int num_preemptions = 0;
  // Prefix caching: hashes of the full blocks of `tokens` computed so far (chained, first block first),
  // how many leading blocks of `table` are in the prefix index, and how many prompt tokens the first
  // admission found cached (what usage reports).
  std::vector<cache::BlockHash> block_hashes;
  int num_indexed_blocks = 0;
  int cached_tokens = 0;

  int generated() const { return static_cast<int>(tokens.size()) - prompt_len; }
};

// Tokens [begin, end) of `seq` run this step; when end reaches the sequence's length, a token is sampled.
struct Chunk {
  Sequence* seq = nullptr;
  int begin = 0;
  int end = 0;
  bool samples() const { return end == static_cast<int>(seq->tokens.size()); }
};

// Copies one KV block (all layers) between the device pool and host memory.
class KvBlockCopier {
 public:
  virtual ~KvBlockCopier() = default;
  virtual void to_host(int32_t block, void* dst) = 0;
  virtual void from_host(const void* src, int32_t block) = 0;
};

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
  // With a fingerprint, full blocks are cached for prefix reuse (see above); without, blocks are freed at once.
  Scheduler(int num_blocks, int block_size, int max_num_seqs, int max_num_batched_tokens,
            std::optional<cache::ModelFingerprint> prefix_caching = std::nullopt);

  // Adds the host tier below the device pool (needs prefix caching; neither is owned). The tier's block_bytes
  // must be the device block's bytes over all layers.
  void set_hot_tier(cache::HotTier* tier, KvBlockCopier* copier);
  // Adds the SSD tier below the host tier (or below the device pool without one); needs prefix caching. The
  // tier must be named by this scheduler's fingerprint and take payloads of `block_bytes` (the device
  // block's bytes over all layers); the staging buffer for reads is reserved here, once. Neither is owned.
  void set_ssd_tier(cache::SsdTier* tier, KvBlockCopier* copier, size_t block_bytes);

  // Moves every cached block no sequence uses down a tier (host RAM, or the SSD without one), as memory
  // pressure would; returns how many left the device. For benchmarks and tests.
  int evict_cached();

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
  const kv::BlockPool& pool() const { return pool_; }
  uint64_t preemptions() const { return preemptions_; }
  // Null without prefix caching.
  const cache::PrefixIndex* prefix_index() const { return index_ ? &*index_ : nullptr; }
  struct PrefixStats {
    uint64_t hit_blocks = 0;      // full prompt blocks found cached on the device at admission
    uint64_t hot_hit_blocks = 0;  // ... found in the host tier instead (copied up)
    uint64_t miss_blocks = 0;     // full prompt blocks (within the cap) found nowhere: computed
    uint64_t evictions = 0;       // cached blocks whose device memory was taken for new KV
    uint64_t hot_stores = 0;      // evicted blocks copied down into the host tier
    uint64_t ssd_hit_blocks = 0;  // ... found on the SSD (read, verified and copied up)
    uint64_t ssd_stores = 0;      // blocks queued for the SSD (the tier may still drop them; see its stats)
  };
  const PrefixStats& prefix_stats() const { return prefix_stats_; }
  // Most tokens one sequence can ever hold: the whole pool.
  int capacity_tokens() const { return pool_.num_blocks() * pool_.block_size(); }

 private:
  void preempt(Sequence* seq);
  // Free blocks plus cached blocks nobody uses: what allocation can draw on.
  int available_blocks() const;
  // Evicts least recently released cached blocks until n blocks are free; false if it cannot.
  bool make_room(int n);
  // Returns the table's blocks to the pool, last block first so that a prefix's tail is evicted first.
  void release_blocks(Sequence* seq);
  // For a sequence with no blocks: reuses its cached prefix if the rest of `budget` tokens then fits.
  // Returns the tokens of the planned chunk after the cached prefix, or -1 when it does not fit (nothing
  // taken).
  int admit(Sequence* seq, int budget);
  void extend_hashes(Sequence* seq, int num_blocks);
  // How many of hashes [from, to) of `seq`, from `from` on, are in the host or the SSD tier.
  int count_lower(const Sequence* seq, int from, int to) const;
  void store_ssd(const cache::BlockHash& hash, const cache::BlockHash& parent, const uint8_t* bytes);

  kv::BlockPool pool_;
  std::optional<cache::ModelFingerprint> fingerprint_;
  std::optional<cache::PrefixIndex> index_;
  cache::HotTier* hot_ = nullptr;
  KvBlockCopier* copier_ = nullptr;
  cache::SsdTier* ssd_ = nullptr;
  std::vector<uint8_t> ssd_buf_;  // one block: staging for SSD reads, and for writes without a host tier
  PrefixStats prefix_stats_;
  int max_num_seqs_;
  int max_num_batched_tokens_;
  std::vector<std::unique_ptr<Sequence>> running_;  // arrival order: newest last
  std::deque<std::unique_ptr<Sequence>> waiting_;
  uint64_t preemptions_ = 0;
};

}  // namespace keel::engine
