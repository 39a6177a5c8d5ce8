// BlockPool: the bookkeeping of fixed-size KV blocks, reserved once at start and handed out by refcount.
// Plain C++ with no device: which block belongs to whom is data, the backend only holds the bytes.
//
// A block is in one of three states: used (refcount > 0), free (on the free list), or kept (refcount 0 but
// its KV still valid, for prefix reuse). Which kept blocks are worth keeping, and which to give up first, is
// the prefix index's business (cache::PrefixIndex); the pool only records the state.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/status.h"

namespace keel::kv {

class BlockPool {
 public:
  BlockPool(int num_blocks, int block_size);

  int num_blocks() const { return static_cast<int>(refcount_.size()); }
  int block_size() const { return block_size_; }
  int num_free() const { return static_cast<int>(free_.size()); }
  int num_kept() const { return num_kept_; }
  int num_used() const { return num_blocks() - num_free() - num_kept(); }

  bool can_allocate(int n) const { return n <= num_free(); }
  // Takes n free blocks (refcount 1 each); fails without taking any when fewer are free.
  Result<std::vector<int32_t>> allocate(int n);
  // Shares a block already in use (prefix reuse).
  Status acquire(int32_t block);
  // Drops one reference; the block returns to the free list at zero.
  Status release(int32_t block);
  // Drops one reference; at zero the block is kept instead of freed (returns true): neither used nor free,
  // its KV intact, until revive() takes it back into use or reclaim() frees it.
  Result<bool> release_and_keep(int32_t block);
  // A kept block back in use (refcount 1).
  Status revive(int32_t block);
  // A kept block onto the free list (its KV will be overwritten).
  Status reclaim(int32_t block);
  int refcount(int32_t block) const { return refcount_[block]; }
  bool is_kept(int32_t block) const { return kept_[block] != 0; }

 private:
  Status check(const char* op, int32_t block) const;

  int block_size_;
  std::vector<int> refcount_;
  std::vector<uint8_t> kept_;
  int num_kept_ = 0;
  std::vector<int32_t> free_;  // LIFO: recently freed blocks are reused first
};

// The blocks of one sequence and the tokens they hold.
class BlockTable {
 public:
  explicit BlockTable(int block_size) : block_size_(block_size) {}

  int num_tokens() const { return num_tokens_; }
  const std::vector<int32_t>& blocks() const { return blocks_; }
  // Blocks needed beyond those held to store `more` further tokens.
  int blocks_needed(int more) const;
  // Grows by `more` tokens, taking new blocks from the pool as needed.
  Status append(BlockPool& pool, int more);
  // Grows by whole blocks whose KV is already computed (a cached prefix); the caller holds a reference to
  // each. The table's own blocks must all be full.
  Status append_full_blocks(std::span<const int32_t> blocks);
  // Physical KV slot of the token at `position`.
  int32_t slot(int position) const {
    return blocks_[position / block_size_] * block_size_ + position % block_size_;
  }
  void release_all(BlockPool& pool);
  // Empties the table and hands its blocks (first to last) to the caller, who releases them.
  std::vector<int32_t> take_blocks();

 private:
  int block_size_;
  int num_tokens_ = 0;
  std::vector<int32_t> blocks_;
};

}  // namespace keel::kv
