// PrefixIndex: which device KV block holds which block hash, and an LRU of blocks no sequence uses any more
// but whose KV is still valid. Freed blocks stay cached until their memory is needed; a new request whose
// prompt starts with cached blocks reuses them (refcount++) instead of recomputing them.
//
// Plain bookkeeping over block ids 0..num_blocks-1, sized once: the LRU is an intrusive list in arrays, so
// releasing, reusing and evicting blocks allocate nothing.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "cache/block_hash.h"

namespace keel::cache {

class PrefixIndex {
 public:
  explicit PrefixIndex(int num_blocks);

  struct Evicted {
    BlockHash hash;
    int32_t block;
    BlockHash parent;  // as given to insert(): what an SSD record names as its parent
  };
  struct Stats {
    uint64_t lookups = 0;
    uint64_t hit_blocks = 0;   // blocks found by lookup()
    uint64_t miss_blocks = 0;  // blocks asked for after the first miss of each lookup
    uint64_t evictions = 0;
  };

  // The blocks holding the longest cached prefix of `hashes`: block i holds hashes[i]; stops at the first
  // hash not cached. The caller acquires each returned block and calls on_acquired() for it.
  std::vector<int32_t> lookup(std::span<const BlockHash> hashes);
  // `block` now holds `hash` (its tokens' KV is fully written). Returns false, changing nothing, when the
  // hash is already held by another block (two sequences computed the same prefix at once) or `block`
  // already holds a hash: the caller's block then simply stays uncached.
  bool insert(const BlockHash& hash, int32_t block, const BlockHash& parent = {});
  // The last reference to `block` was released. A cached block stays cached and becomes the most recently
  // used evictable one (returns true); an uncached block returns false and belongs in the pool's free list.
  bool on_released(int32_t block);
  // `block` is referenced again (prefix reuse): it leaves the evictable LRU.
  void on_acquired(int32_t block);
  // Takes the least recently released cached block: its hash is forgotten and both are returned so the
  // caller can copy the bytes down a tier before reusing the memory. Empty when nothing is evictable.
  std::optional<Evicted> evict_lru();
  // Forgets whatever `block` holds (its memory is being overwritten).
  void erase_block(int32_t block);

  std::optional<int32_t> find(const BlockHash& hash) const;
  std::optional<BlockHash> hash_of(int32_t block) const;
  // The parent given to insert() for the hash `block` holds (zero when it holds none).
  BlockHash parent_of(int32_t block) const { return parent_of_[block]; }
  bool is_evictable(int32_t block) const { return in_lru_[block]; }
  int num_blocks() const { return static_cast<int>(hash_of_.size()); }
  size_t num_cached() const { return by_hash_.size(); }
  size_t num_evictable() const { return num_evictable_; }
  const Stats& stats() const { return stats_; }

 private:
  void lru_push_back(int32_t block);
  void lru_remove(int32_t block);

  std::unordered_map<BlockHash, int32_t, Hash128Hasher> by_hash_;
  std::vector<BlockHash> hash_of_;
  std::vector<BlockHash> parent_of_;
  std::vector<uint8_t> cached_;
  std::vector<uint8_t> in_lru_;
  std::vector<int32_t> prev_;  // -1 = none
  std::vector<int32_t> next_;
  int32_t head_ = -1;          // least recently released
  int32_t tail_ = -1;
  size_t num_evictable_ = 0;
  Stats stats_;
};

}  // namespace keel::cache
