#include "cache/prefix_index.h"

namespace keel::cache {

PrefixIndex::PrefixIndex(int num_blocks)
    : hash_of_(num_blocks), parent_of_(num_blocks), cached_(num_blocks, 0), in_lru_(num_blocks, 0), prev_(num_blocks, -1),
      next_(num_blocks, -1) {
  by_hash_.reserve(static_cast<size_t>(num_blocks));
}

std::vector<int32_t> PrefixIndex::lookup(std::span<const BlockHash> hashes) {
  stats_.lookups++;
  std::vector<int32_t> blocks;
  for (const BlockHash& h : hashes) {
    auto it = by_hash_.find(h);
    if (it == by_hash_.end()) break;
    blocks.push_back(it->second);
  }
  stats_.hit_blocks += blocks.size();
  stats_.miss_blocks += hashes.size() - blocks.size();
  return blocks;
}

bool PrefixIndex::insert(const BlockHash& hash, int32_t block, const BlockHash& parent) {
  if (block < 0 || block >= num_blocks() || cached_[block]) return false;
  if (!by_hash_.emplace(hash, block).second) return false;
  hash_of_[block] = hash;
  parent_of_[block] = parent;
  cached_[block] = 1;
  return true;
}

bool PrefixIndex::on_released(int32_t block) {
  if (block < 0 || block >= num_blocks() || !cached_[block]) return false;
  if (in_lru_[block]) lru_remove(block);
  lru_push_back(block);
  return true;
}

void PrefixIndex::on_acquired(int32_t block) {
  if (block >= 0 && block < num_blocks() && in_lru_[block]) lru_remove(block);
}

std::optional<PrefixIndex::Evicted> PrefixIndex::evict_lru() {
  if (head_ < 0) return std::nullopt;
  int32_t block = head_;
  Evicted out{hash_of_[block], block, parent_of_[block]};
  erase_block(block);
  stats_.evictions++;
  return out;
}

void PrefixIndex::erase_block(int32_t block) {
  if (block < 0 || block >= num_blocks() || !cached_[block]) return;
  if (in_lru_[block]) lru_remove(block);
  by_hash_.erase(hash_of_[block]);
  hash_of_[block] = BlockHash{};
  cached_[block] = 0;
}

std::optional<int32_t> PrefixIndex::find(const BlockHash& hash) const {
  auto it = by_hash_.find(hash);
  if (it == by_hash_.end()) return std::nullopt;
  return it->second;
}

std::optional<BlockHash> PrefixIndex::hash_of(int32_t block) const {
  if (block < 0 || block >= num_blocks() || !cached_[block]) return std::nullopt;
  return hash_of_[block];
}

void PrefixIndex::lru_push_back(int32_t block) {
  prev_[block] = tail_;
  next_[block] = -1;
  if (tail_ >= 0) next_[tail_] = block;
  else head_ = block;
  tail_ = block;
  in_lru_[block] = 1;
  num_evictable_++;
}

void PrefixIndex::lru_remove(int32_t block) {
  if (prev_[block] >= 0) next_[prev_[block]] = next_[block];
  else head_ = next_[block];
  if (next_[block] >= 0) prev_[next_[block]] = prev_[block];
  else tail_ = prev_[block];
  prev_[block] = next_[block] = -1;
  in_lru_[block] = 0;
  num_evictable_--;
}

}  // namespace keel::cache
