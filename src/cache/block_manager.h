// BlockManager: owns the KV blocks and everything that caches them (nano-vllm's block manager): the device
// block pool, the prefix index over it, the host RAM tier and the SSD tier below it, and the copies between
// them. The scheduler asks it questions (can this sequence be admitted, can it grow by n tokens) and hands it
// sequences (admit, append, free); which sequence to admit, grow or preempt is the scheduler's policy.
//
// Prefix caching (with a model fingerprint): every full block whose KV is computed is entered in the
// PrefixIndex under its chained hash. A block nobody references any more stays cached (kept by the pool) until
// its memory is needed, least recently released first. A sequence admitted starts with the longest cached run
// of its full blocks, capped so that its last token is still computed (its logits give the next token).
//
// Tiers: a cached block evicted from the device has its bytes copied into the host tier first; a block the
// host tier drops is queued for the SSD from the slot it leaves (or, without a host tier, a block evicted from
// the device is). With write-through (the default with an SSD tier) a block is queued for the SSD as soon as
// it is full and computed, once per hash, so that what was computed survives a kill -9; the SSD queue is
// bounded and drops (counted) when full. At admission the cached run may continue block by block in either
// lower tier: those blocks get fresh device blocks filled from there. A record that fails its check ends the
// run: those tokens are computed instead. Copies are synchronous, in program order, through a KvBlockCopier.
//
// Every pool operation that "cannot fail" is checked (KEEL_CHECK_OK): a failure is a bookkeeping bug.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "cache/block_hash.h"
#include "cache/hot_tier.h"
#include "cache/prefix_index.h"
#include "cache/ssd_tier.h"
#include "kv/block_pool.h"

namespace keel::cache {

// Copies one KV block (all layers) between the device pool and host memory.
class KvBlockCopier {
 public:
  virtual ~KvBlockCopier() = default;
  virtual void to_host(int32_t block, void* dst) = 0;
  virtual void from_host(const void* src, int32_t block) = 0;
};

// The KV state of one sequence as the block manager keeps it: its tokens (prompt + generated so far), the table
// of blocks holding their KV, the chained hashes of its full blocks computed so far (first block first) and how
// many leading blocks of the table are in the prefix index.
struct SequenceBlocks {
  SequenceBlocks(std::vector<int32_t> tokens, int block_size) : tokens(std::move(tokens)), table(block_size) {}
  std::vector<int32_t> tokens;
  kv::BlockTable table;
  std::vector<BlockHash> block_hashes;
  int num_indexed_blocks = 0;
  // The first block's parent: zero, or the request's salt key (salt_key(cache_salt)): sequences with different
  // salts share no block.
  BlockHash salt;
  // false: admitted without any cached prefix, every token computed (prompt logprobs need each position's
  // logits). Its full blocks are still indexed for others.
  bool reuse_cached = true;
};

enum class SsdWritePolicy {
  kThrough,  // a block goes to the SSD queue once it is full and computed (survives kill -9)
  kBack,     // only blocks the tiers above give up go down (fewer writes; lost with the process)
};

struct BlockManagerStats {
  uint64_t hit_blocks = 0;      // full prompt blocks found cached on the device at admission
  uint64_t hot_hit_blocks = 0;  // ... found in the host tier instead (copied up)
  uint64_t miss_blocks = 0;     // full prompt blocks (within the cap) found nowhere: computed
  uint64_t evictions = 0;       // cached blocks whose device memory was taken for new KV
  uint64_t hot_stores = 0;      // evicted blocks copied down into the host tier
  uint64_t ssd_hit_blocks = 0;  // ... found on the SSD (read, verified and copied up)
  uint64_t ssd_stores = 0;      // blocks queued for the SSD (the tier may still drop them; see its stats)
  uint64_t ssd_write_through = 0;          // ... of which queued by write-through, when computed
  uint64_t ssd_write_through_dropped = 0;  // computed blocks write-through could not queue (queue full, paused)
};

class BlockManager {
 public:
  // With a fingerprint, full blocks are cached for prefix reuse; without, blocks are freed at once.
  BlockManager(int num_blocks, int block_size, std::optional<ModelFingerprint> prefix_caching);

  // Adds the host tier below the device pool (needs prefix caching; neither is owned). The tier's block_bytes
  // must be the device block's bytes over all layers.
  void set_hot_tier(HotTier* tier, KvBlockCopier* copier);
  // Adds the SSD tier below the host tier (or below the device pool without one); needs prefix caching. The
  // tier must be named by this manager's fingerprint and take payloads of `block_bytes` (the device block's
  // bytes over all layers); the staging buffer for reads and writes is reserved here, once. Neither is owned.
  void set_ssd_tier(SsdTier* tier, KvBlockCopier* copier, size_t block_bytes,
                    SsdWritePolicy policy = SsdWritePolicy::kThrough);

  // Free blocks plus cached blocks nobody uses: what allocation can draw on.
  int available_blocks() const;
  // Whether `seq` can grow by `n` tokens now (evicting cached blocks as needed).
  bool can_append(const SequenceBlocks& seq, int n) const;
  // Grows `seq`'s table by `n` token slots, evicting cached blocks as needed. Requires can_append (checked).
  void append(SequenceBlocks& seq, int n);

  struct Admission {
    int cached_tokens = 0;  // leading tokens whose KV was found (device or tiers): not computed again
    int chunk_tokens = 0;   // tokens after them given slots now (at most `budget`)
  };
  // For a sequence holding no blocks: takes its longest cached prefix and slots for up to `budget` more tokens.
  // Empty (nothing taken) when the blocks that needs are not available.
  std::optional<Admission> admit(SequenceBlocks& seq, int budget);
  // Tokens [0, computed) of `seq` have their KV: its newly full blocks enter the prefix index (and, with
  // write-through, the SSD queue).
  void on_computed(SequenceBlocks& seq, int computed);
  // Returns `seq`'s blocks, last first so that a prefix's tail is evicted first; cached ones stay for reuse.
  void free(SequenceBlocks& seq);

  // Moves every cached block no sequence uses down a tier (host RAM, or the SSD without one), as memory
  // pressure would; returns how many left the device. For benchmarks and tests.
  int evict_cached();
  // Queues for the SSD every block the host tier and the device cache hold that the SSD has neither on disk
  // nor queued, waiting for the queue as it fills (a clean shutdown: what was computed outlives the process).
  // Returns how many were queued. Without an SSD tier, 0.
  int persist_to_ssd();

  const kv::BlockPool& pool() const { return pool_; }
  int block_size() const { return pool_.block_size(); }
  // Null without prefix caching.
  const PrefixIndex* prefix_index() const { return index_ ? &*index_ : nullptr; }
  const BlockManagerStats& stats() const { return stats_; }
  // Most tokens one sequence can ever hold: the whole pool.
  int capacity_tokens() const { return pool_.num_blocks() * pool_.block_size(); }
  bool has_ssd_tier() const { return ssd_ != nullptr; }

 private:
  // Evicts the least recently released cached block (down a tier first); false when none is evictable.
  bool evict_one();
  // Evicts until `n` blocks are free; false when it cannot.
  bool make_room(int n);
  void extend_hashes(SequenceBlocks& seq, int num_blocks);
  // How many of hashes [from, to) of `seq`, from `from` on, are in the host or the SSD tier.
  int count_lower(const SequenceBlocks& seq, int from, int to) const;
  bool store_ssd(const BlockHash& hash, const BlockHash& parent, const uint8_t* bytes);
  // Write-through of one computed device block.
  void write_through(const BlockHash& hash, const BlockHash& parent, int32_t block);

  kv::BlockPool pool_;
  std::optional<ModelFingerprint> fingerprint_;
  std::optional<PrefixIndex> index_;
  HotTier* hot_ = nullptr;
  KvBlockCopier* copier_ = nullptr;
  SsdTier* ssd_ = nullptr;
  SsdWritePolicy ssd_policy_ = SsdWritePolicy::kThrough;
  std::vector<uint8_t> ssd_buf_;  // one block: staging for SSD reads, and for writes from the device
  BlockManagerStats stats_;
};

}  // namespace keel::cache
