#include "kv/block_pool.h"

namespace keel::kv {

BlockPool::BlockPool(int num_blocks, int block_size) : block_size_(block_size), refcount_(num_blocks, 0) {
  free_.reserve(num_blocks);
  for (int b = num_blocks - 1; b >= 0; b--) free_.push_back(b);
}

Result<std::vector<int32_t>> BlockPool::allocate(int n) {
  if (n < 0) return invalid_argument("allocate: negative block count {}", n);
  if (!can_allocate(n))
    return resource_exhausted("KV pool: {} blocks requested, {} of {} free", n, num_free(), num_blocks());
  std::vector<int32_t> out;
  out.reserve(n);
  for (int i = 0; i < n; i++) {
    int32_t b = free_.back();
    free_.pop_back();
    refcount_[b] = 1;
    out.push_back(b);
  }
  return out;
}

Status BlockPool::acquire(int32_t block) {
  if (block < 0 || block >= num_blocks()) return invalid_argument("acquire: block {} outside the pool", block);
  if (refcount_[block] == 0) return internal_error("acquire: block {} is free", block);
  refcount_[block]++;
  return Status();
}

Status BlockPool::release(int32_t block) {
  if (block < 0 || block >= num_blocks()) return invalid_argument("release: block {} outside the pool", block);
  if (refcount_[block] == 0) return internal_error("release: block {} released more often than acquired", block);
  if (--refcount_[block] == 0) free_.push_back(block);
  return Status();
}

int BlockTable::blocks_needed(int more) const {
  const int total = num_tokens_ + more;
  const int need = (total + block_size_ - 1) / block_size_;
  return std::max(0, need - static_cast<int>(blocks_.size()));
}

Status BlockTable::append(BlockPool& pool, int more) {
  KEEL_ASSIGN_OR_RETURN(auto fresh, pool.allocate(blocks_needed(more)));
  blocks_.insert(blocks_.end(), fresh.begin(), fresh.end());
  num_tokens_ += more;
  return Status();
}

void BlockTable::release_all(BlockPool& pool) {
  for (int32_t b : blocks_) (void)pool.release(b);
  blocks_.clear();
  num_tokens_ = 0;
}

}  // namespace keel::kv
