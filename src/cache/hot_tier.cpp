#include "cache/hot_tier.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace keel::cache {

namespace {

class AlignedAllocator final : public HostAllocator {
 public:
  Result<void*> allocate(size_t bytes) override {
    // Page alignment suits DMA engines and vector loads; posix_memalign does not round the size up, so the
    // pool takes exactly the bytes asked for.
    void* p = nullptr;
    if (::posix_memalign(&p, 4096, bytes) != 0 || p == nullptr)
      return resource_exhausted("hot cache: cannot allocate {} bytes of host memory", bytes);
    return p;
  }
  void deallocate(void* p, size_t) override { std::free(p); }
};

}  // namespace

HostAllocator* HostAllocator::aligned() {
  static AlignedAllocator allocator;
  return &allocator;
}

Result<std::unique_ptr<HotTier>> HotTier::create(uint64_t max_bytes, size_t block_bytes, HostAllocator* allocator) {
  if (block_bytes == 0) return invalid_argument("hot cache: block size is 0 bytes");
  uint64_t slots = max_bytes / block_bytes;
  if (slots == 0)
    return invalid_argument("--hot-cache-max-size {} bytes holds no block of {} bytes", max_bytes, block_bytes);
  if (slots > static_cast<uint64_t>(INT32_MAX)) return invalid_argument("hot cache: {} blocks is too many", slots);
  KEEL_ASSIGN_OR_RETURN(void* pool, allocator->allocate(slots * block_bytes));
  return std::unique_ptr<HotTier>(
      new HotTier(max_bytes, block_bytes, static_cast<size_t>(slots), allocator, static_cast<uint8_t*>(pool)));
}

HotTier::HotTier(uint64_t max_bytes, size_t block_bytes, size_t slots, HostAllocator* allocator, uint8_t* pool)
    : max_bytes_(max_bytes), block_bytes_(block_bytes), allocator_(allocator), pool_(pool), hash_of_(slots), parent_of_(slots),
      prev_(slots, -1), next_(slots, -1) {
  slot_of_.reserve(slots);
  free_slots_.reserve(slots);
  for (size_t s = slots; s-- > 0;) free_slots_.push_back(static_cast<int32_t>(s));
}

HotTier::~HotTier() { allocator_->deallocate(pool_, reserved_bytes()); }

uint8_t* HotTier::put(const BlockHash& hash, std::optional<BlockHash>* evicted) {
  std::optional<Evicted> e;
  uint8_t* slot = put(hash, BlockHash{}, &e);
  if (evicted != nullptr) {
    evicted->reset();
    if (e) *evicted = e->hash;
  }
  return slot;
}

uint8_t* HotTier::put(const BlockHash& hash, const BlockHash& parent, std::optional<Evicted>* evicted) {
  if (evicted != nullptr) evicted->reset();
  stats_.puts++;
  if (auto it = slot_of_.find(hash); it != slot_of_.end()) {
    touch(it->second);
    return pool_ + static_cast<size_t>(it->second) * block_bytes_;
  }
  int32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    slot = head_;
    unlink(slot);
    slot_of_.erase(hash_of_[slot]);
    if (evicted != nullptr) *evicted = Evicted{hash_of_[slot], parent_of_[slot]};
    stats_.evictions++;
  }
  hash_of_[slot] = hash;
  parent_of_[slot] = parent;
  slot_of_.emplace(hash, slot);
  link_back(slot);
  return pool_ + static_cast<size_t>(slot) * block_bytes_;
}

void HotTier::put_copy(const BlockHash& hash, std::span<const uint8_t> bytes, std::optional<BlockHash>* evicted) {
  uint8_t* slot = put(hash, evicted);
  std::memcpy(slot, bytes.data(), std::min(bytes.size(), block_bytes_));
}

const uint8_t* HotTier::get(const BlockHash& hash) {
  auto it = slot_of_.find(hash);
  if (it == slot_of_.end()) {
    stats_.misses++;
    return nullptr;
  }
  stats_.hits++;
  touch(it->second);
  return pool_ + static_cast<size_t>(it->second) * block_bytes_;
}

size_t HotTier::count_prefix(std::span<const BlockHash> hashes) const {
  size_t n = 0;
  while (n < hashes.size() && contains(hashes[n])) n++;
  return n;
}

bool HotTier::erase(const BlockHash& hash) {
  auto it = slot_of_.find(hash);
  if (it == slot_of_.end()) return false;
  int32_t slot = it->second;
  unlink(slot);
  slot_of_.erase(it);
  free_slots_.push_back(slot);
  return true;
}

void HotTier::touch(int32_t slot) {
  if (tail_ == slot) return;
  unlink(slot);
  link_back(slot);
}

void HotTier::unlink(int32_t slot) {
  if (prev_[slot] >= 0) next_[prev_[slot]] = next_[slot];
  else head_ = next_[slot];
  if (next_[slot] >= 0) prev_[next_[slot]] = prev_[slot];
  else tail_ = prev_[slot];
  prev_[slot] = next_[slot] = -1;
}

void HotTier::link_back(int32_t slot) {
  prev_[slot] = tail_;
  next_[slot] = -1;
  if (tail_ >= 0) next_[tail_] = slot;
  else head_ = slot;
  tail_ = slot;
}

}  // namespace keel::cache
