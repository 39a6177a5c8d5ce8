// HotTier: KV blocks in host RAM (`--hot-cache-max-size`), between the device and the SSD tier.
//
// One pool of max_bytes / block_bytes slots is reserved once at start; nothing is allocated afterwards, so
// the cap cannot be exceeded. Slots are named by block hash and recycled least-recently-used first. Copying
// bytes in and out is the caller's (an async device copy later), so put() hands out the slot to fill and
// get() the slot to read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "cache/block_hash.h"

namespace keel::cache {

// Where the pool's memory comes from: plain aligned memory now, pinned (cudaHostAlloc) memory with CUDA.
class HostAllocator {
 public:
  virtual ~HostAllocator() = default;
  virtual Result<void*> allocate(size_t bytes) = 0;
  virtual void deallocate(void* p, size_t bytes) = 0;
  // The process-wide allocator of page-aligned ordinary memory.
  static HostAllocator* aligned();
};

class HotTier {
 public:
  struct Stats {
    uint64_t puts = 0;
    uint64_t hits = 0;
    uint64_t misses = 0;
    uint64_t evictions = 0;
  };

  // Reserves floor(max_bytes / block_bytes) slots; fails when that is zero or the allocation fails.
  static Result<std::unique_ptr<HotTier>> create(uint64_t max_bytes, size_t block_bytes,
                                                 HostAllocator* allocator = HostAllocator::aligned());
  ~HotTier();
  HotTier(const HotTier&) = delete;
  HotTier& operator=(const HotTier&) = delete;

  // The slot to write `hash`'s block_bytes into; the slot becomes the most recently used. When `hash` is
  // already here its own slot is returned. When the tier is full the least recently used block is evicted
  // and its hash stored in `*evicted`: its bytes are still in the returned slot until the caller
  // overwrites them, so it can send them down to the SSD tier first.
  uint8_t* put(const BlockHash& hash, std::optional<BlockHash>* evicted = nullptr);
  // The same, keeping the block's parent hash beside it and handing back the evicted block's (what the SSD
  // tier's record names).
  struct Evicted {
    BlockHash hash;
    BlockHash parent;
  };
  uint8_t* put(const BlockHash& hash, const BlockHash& parent, std::optional<Evicted>* evicted);
  // put() plus the copy; `bytes` may be shorter than block_bytes.
  void put_copy(const BlockHash& hash, std::span<const uint8_t> bytes, std::optional<BlockHash>* evicted = nullptr);
  // The slot holding `hash` (now the most recently used), or nullptr. Valid until the next put/erase.
  const uint8_t* get(const BlockHash& hash);
  bool contains(const BlockHash& hash) const { return slot_of_.count(hash) > 0; }
  // How many leading hashes are here, without touching the LRU.
  size_t count_prefix(std::span<const BlockHash> hashes) const;
  bool erase(const BlockHash& hash);
  // Calls fn(hash, parent, bytes) for every block held, most recently used first, without touching the LRU.
  template <typename Fn>
  void for_each(Fn&& fn) const {
    for (int32_t s = tail_; s >= 0; s = prev_[s]) fn(hash_of_[s], parent_of_[s], pool_ + static_cast<size_t>(s) * block_bytes_);
  }

  size_t block_bytes() const { return block_bytes_; }
  size_t capacity_blocks() const { return hash_of_.size(); }
  size_t num_blocks() const { return slot_of_.size(); }
  uint64_t max_bytes() const { return max_bytes_; }
  // Bytes reserved for the pool: capacity_blocks * block_bytes <= max_bytes, fixed for the tier's life.
  uint64_t reserved_bytes() const { return static_cast<uint64_t>(capacity_blocks()) * block_bytes_; }
  // Bytes holding cached blocks.
  uint64_t used_bytes() const { return static_cast<uint64_t>(num_blocks()) * block_bytes_; }
  const Stats& stats() const { return stats_; }

 private:
  HotTier(uint64_t max_bytes, size_t block_bytes, size_t slots, HostAllocator* allocator, uint8_t* pool);
  void touch(int32_t slot);
  void unlink(int32_t slot);
  void link_back(int32_t slot);

  uint64_t max_bytes_;
  size_t block_bytes_;
  HostAllocator* allocator_;
  uint8_t* pool_;
  std::unordered_map<BlockHash, int32_t, Hash128Hasher> slot_of_;
  std::vector<BlockHash> hash_of_;
  std::vector<BlockHash> parent_of_;
  std::vector<int32_t> prev_, next_;  // LRU over used slots; -1 = none
  std::vector<int32_t> free_slots_;
  int32_t head_ = -1;  // least recently used
  int32_t tail_ = -1;
  Stats stats_;
};

}  // namespace keel::cache
