#include "kv/block_pool.h"

namespace keel::kv {

BlockPool::BlockPool(int num_blocks, int block_size)
    : block_size_(block_size), refcount_(num_blocks, 0), kept_(num_blocks, 0) {
  free_.reserve(num_blocks);
  for (int b = num_blocks - 1; b >= 0; b--) free_.push_back(b);
}

Status BlockPool::check(const char* op, int32_t block) const {
  if (block < 0 || block >= num_blocks()) return invalid_argument("{}: block {} outside the pool", op, block);
  return Status();
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
  KEEL_RETURN_IF_ERROR(check("acquire", block));
  if (refcount_[block] == 0)
    return internal_error("acquire: block {} is {}", block, kept_[block] ? "kept (revive it)" : "free");
  refcount_[block]++;
  return Status();
}

Status BlockPool::release(int32_t block) {
  KEEL_ASSIGN_OR_RETURN(bool zero, release_and_keep(block));
  if (zero) return reclaim(block);
  return Status();
}

Result<bool> BlockPool::release_and_keep(int32_t block) {
  KEEL_RETURN_IF_ERROR(check("release", block));
  if (refcount_[block] == 0) return internal_error("release: block {} released more often than acquired", block);
  if (--refcount_[block] > 0) return false;
  kept_[block] = 1;
  num_kept_++;
  return true;
}

Status BlockPool::revive(int32_t block) {
  KEEL_RETURN_IF_ERROR(check("revive", block));
  if (!kept_[block]) return internal_error("revive: block {} is not kept (refcount {})", block, refcount_[block]);
  kept_[block] = 0;
  num_kept_--;
  refcount_[block] = 1;
  return Status();
}

Status BlockPool::reclaim(int32_t block) {
  KEEL_RETURN_IF_ERROR(check("reclaim", block));
  if (!kept_[block]) return internal_error("reclaim: block {} is not kept (refcount {})", block, refcount_[block]);
  kept_[block] = 0;
  num_kept_--;
  free_.push_back(block);
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

Status BlockTable::append_full_blocks(std::span<const int32_t> blocks) {
  if (num_tokens_ != static_cast<int>(blocks_.size()) * block_size_)
    return internal_error("append_full_blocks: the table's last block holds {} of {} tokens",
                          num_tokens_ % block_size_, block_size_);
  blocks_.insert(blocks_.end(), blocks.begin(), blocks.end());
  num_tokens_ += static_cast<int>(blocks.size()) * block_size_;
  return Status();
}

void BlockTable::release_all(BlockPool& pool) {
  for (int32_t b : take_blocks()) (void)pool.release(b);
}

std::vector<int32_t> BlockTable::take_blocks() {
  std::vector<int32_t> out;
  out.swap(blocks_);
  num_tokens_ = 0;
  return out;
}

}  // namespace keel::kv
