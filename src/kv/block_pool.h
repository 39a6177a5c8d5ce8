// BlockPool: the bookkeeping of fixed-size KV blocks, reserved once at start and handed out by refcount.
// Plain C++ with no device: which block belongs to whom is data, the backend only holds the bytes.
#pragma once

#include <cstdint>
#include <vector>

#include "base/status.h"

namespace keel::kv {

class BlockPool {
 public:
  BlockPool(int num_blocks, int block_size);

  int num_blocks() const { return static_cast<int>(refcount_.size()); }
  int block_size() const { return block_size_; }
  int num_free() const { return static_cast<int>(free_.size()); }
  int num_used() const { return num_blocks() - num_free(); }

  bool can_allocate(int n) const { return n <= num_free(); }
  // Takes n free blocks (refcount 1 each); fails without taking any when fewer are free.
  Result<std::vector<int32_t>> allocate(int n);
  // Shares a block already in use (prefix reuse).
  Status acquire(int32_t block);
  // Drops one reference; the block returns to the free list at zero.
  Status release(int32_t block);
  int refcount(int32_t block) const { return refcount_[block]; }

 private:
  int block_size_;
  std::vector<int> refcount_;
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
  // Physical KV slot of the token at `position`.
  int32_t slot(int position) const {
    return blocks_[position / block_size_] * block_size_ + position % block_size_;
  }
  void release_all(BlockPool& pool);

 private:
  int block_size_;
  int num_tokens_ = 0;
  std::vector<int32_t> blocks_;
};

}  // namespace keel::kv
