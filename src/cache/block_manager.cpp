#include "cache/block_manager.h"

#include <algorithm>

#include "base/check.h"

namespace keel::cache {

BlockManager::BlockManager(int num_blocks, int block_size, std::optional<ModelFingerprint> prefix_caching)
    : pool_(num_blocks, block_size), fingerprint_(prefix_caching) {
  if (fingerprint_) index_.emplace(num_blocks);
}

void BlockManager::set_hot_tier(HotTier* tier, KvBlockCopier* copier) {
  hot_ = index_ ? tier : nullptr;
  copier_ = copier;
}

void BlockManager::set_ssd_tier(SsdTier* tier, KvBlockCopier* copier, size_t block_bytes, SsdWritePolicy policy) {
  ssd_ = index_ ? tier : nullptr;
  copier_ = copier;
  ssd_policy_ = policy;
  ssd_buf_.assign(ssd_ ? block_bytes : 0, 0);
}

bool BlockManager::store_ssd(const BlockHash& hash, const BlockHash& parent, const uint8_t* bytes) {
  if (!ssd_->put(hash, parent, static_cast<uint32_t>(pool_.block_size()), std::span(bytes, ssd_buf_.size())))
    return false;
  stats_.ssd_stores++;
  return true;
}

int BlockManager::count_lower(const SequenceBlocks& seq, int from, int to) const {
  int j = from;
  while (j < to && ((hot_ && hot_->contains(seq.block_hashes[j])) || (ssd_ && ssd_->contains(seq.block_hashes[j]))))
    j++;
  return j - from;
}

int BlockManager::available_blocks() const {
  return pool_.num_free() + (index_ ? static_cast<int>(index_->num_evictable()) : 0);
}

bool BlockManager::can_append(const SequenceBlocks& seq, int n) const {
  return seq.table.blocks_needed(n) <= available_blocks();
}

void BlockManager::append(SequenceBlocks& seq, int n) {
  const int need = seq.table.blocks_needed(n);
  KEEL_CHECK(make_room(need), "append of {} tokens needs {} blocks, {} available (the caller checks can_append)", n,
             need, available_blocks());
  KEEL_CHECK_OK(seq.table.append(pool_, n), "the blocks were made room for");
}

bool BlockManager::evict_one() {
  if (!index_) return false;
  auto evicted = index_->evict_lru();
  if (!evicted) return false;
  if (hot_) {
    // Down a tier before the memory is reused; a block the tier holds already is only touched.
    const bool had = hot_->contains(evicted->hash);
    std::optional<HotTier::Evicted> dropped;
    uint8_t* slot = hot_->put(evicted->hash, evicted->parent, &dropped);
    // The block the host tier dropped is still in the slot: down to the SSD before it is overwritten.
    if (dropped && ssd_) store_ssd(dropped->hash, dropped->parent, slot);
    if (!had) {
      copier_->to_host(evicted->block, slot);
      stats_.hot_stores++;
    }
  } else if (ssd_ && !ssd_->contains(evicted->hash)) {
    copier_->to_host(evicted->block, ssd_buf_.data());
    store_ssd(evicted->hash, evicted->parent, ssd_buf_.data());
  }
  KEEL_CHECK_OK(pool_.reclaim(evicted->block), "every evictable block is kept by the pool");
  stats_.evictions++;
  return true;
}

bool BlockManager::make_room(int n) {
  while (pool_.num_free() < n)
    if (!evict_one()) return false;
  return true;
}

int BlockManager::evict_cached() {
  const uint64_t before = stats_.evictions;
  while (evict_one()) {
  }
  return static_cast<int>(stats_.evictions - before);
}

void BlockManager::free(SequenceBlocks& seq) {
  std::vector<int32_t> blocks = seq.table.take_blocks();
  for (auto it = blocks.rbegin(); it != blocks.rend(); ++it) {
    auto zero = pool_.release_and_keep(*it);
    KEEL_CHECK(zero.ok(), "a sequence's block is referenced: {}", zero.status().message());
    if (*zero && !(index_ && index_->on_released(*it)))
      KEEL_CHECK_OK(pool_.reclaim(*it), "a block at refcount 0 that the index does not cache is kept");
  }
  seq.num_indexed_blocks = 0;
}

void BlockManager::extend_hashes(SequenceBlocks& seq, int num_blocks) {
  const int bs = pool_.block_size();
  auto& hashes = seq.block_hashes;
  while (static_cast<int>(hashes.size()) < num_blocks) {
    const BlockHash parent = hashes.empty() ? seq.salt : hashes.back();
    const size_t begin = hashes.size() * bs;
    hashes.push_back(block_hash(*fingerprint_, parent, std::span(seq.tokens).subspan(begin, bs)));
  }
}

std::optional<BlockManager::Admission> BlockManager::admit(SequenceBlocks& seq, int budget) {
  KEEL_CHECK(seq.table.blocks().empty(), "admitting a sequence that holds {} blocks", seq.table.blocks().size());
  const int bs = pool_.block_size();
  const int len = static_cast<int>(seq.tokens.size());
  std::vector<int32_t> hits;
  int cap = 0;
  if (index_) {
    // The last token is always computed: its logits give the next token.
    cap = seq.reuse_cached ? (len - 1) / bs : 0;
    extend_hashes(seq, cap);
    hits = index_->lookup(std::span(seq.block_hashes).first(cap));
  }
  const int hit = static_cast<int>(hits.size());
  // The cached run may go on in the host tier or on the SSD: those blocks get fresh device blocks, filled
  // from there.
  int lower = count_lower(seq, hit, cap);
  const int n = std::min(len - (hit + lower) * bs, budget);
  const int need = lower + (n + bs - 1) / bs;
  int kept = 0;
  for (int32_t b : hits) kept += pool_.is_kept(b) ? 1 : 0;
  // Reviving a kept hit takes it out of what can be evicted.
  if (available_blocks() - kept < need) return std::nullopt;
  for (int32_t b : hits) {
    if (pool_.is_kept(b)) {
      KEEL_CHECK_OK(pool_.revive(b), "the index found a kept block");
      index_->on_acquired(b);
    } else {
      KEEL_CHECK_OK(pool_.acquire(b), "the index found a block in use");
    }
  }
  KEEL_CHECK_OK(seq.table.append_full_blocks(hits), "the table is empty");
  // Write-through keeps what the device serves on disk: a device hit whose SSD copy went with an evicted segment
  // is queued again (found by the soak: the hottest prefix, written once and then only ever served from the
  // device, was lost to a kill -9 once the capped tier had evicted its segment).
  if (ssd_ && ssd_policy_ == SsdWritePolicy::kThrough) {
    for (int i = 0; i < hit; i++) write_through(seq.block_hashes[i], i > 0 ? seq.block_hashes[i - 1] : seq.salt, hits[i]);
  }
  // Most recently used first, so that blocks sent down by make_room do not push them out of the tier.
  for (int i = hit; i < hit + lower; i++)
    if (hot_ && hot_->contains(seq.block_hashes[i])) hot_->get(seq.block_hashes[i]);
  KEEL_CHECK(make_room(need), "admission needs {} blocks, {} available after reviving {} kept hits", need,
             available_blocks(), kept);
  // Only if the host tier is smaller than what make_room sent down can it have lost some of them (and the
  // SSD not have them yet: its writes become visible later).
  if (lower > 0) lower = count_lower(seq, hit, hit + lower);
  auto up = pool_.allocate(lower);
  KEEL_CHECK(up.ok(), "{} blocks for the lower tiers' run are within the {} made room for", lower, need);
  int hot = 0, ssd = 0;
  for (int i = 0; i < lower; i++) {
    const BlockHash& h = seq.block_hashes[hit + i];
    const int32_t b = (*up)[i];
    size_t got = 0;
    if (hot_ && hot_->contains(h)) {
      copier_->from_host(hot_->get(h), b);
      hot++;
    } else if (ssd_ && ssd_->get(h, ssd_buf_, &got) && got == ssd_buf_.size()) {
      copier_->from_host(ssd_buf_.data(), b);
      ssd++;
    } else {
      // A record that failed its check on reading (now forgotten): the run ends here.
      for (int k = i; k < lower; k++) KEEL_CHECK_OK(pool_.release((*up)[k]), "just allocated");
      up->resize(i);
      break;
    }
    // Refused (the block simply stays uncached) when a later block of the run is still on the device under
    // another block: lookup stops at the first miss, the device may hold blocks past it.
    index_->insert(h, b, hit + i > 0 ? seq.block_hashes[hit + i - 1] : seq.salt);
  }
  lower = hot + ssd;
  KEEL_CHECK_OK(seq.table.append_full_blocks(*up), "the table's blocks are all full");
  const int cached = (hit + lower) * bs;
  // A shorter lower run (see above) leaves more to compute; the chunk stays within the budget and within the
  // blocks made room for.
  const int chunk = std::min(len - cached, budget);
  KEEL_CHECK_OK(seq.table.append(pool_, chunk), "the chunk's blocks were made room for");
  seq.num_indexed_blocks = hit + lower;
  stats_.hit_blocks += hit;
  stats_.hot_hit_blocks += hot;
  stats_.ssd_hit_blocks += ssd;
  stats_.miss_blocks += cap - hit - lower;
  return Admission{cached, chunk};
}

void BlockManager::write_through(const BlockHash& hash, const BlockHash& parent, int32_t block) {
  if (ssd_->contains(hash)) return;  // once per hash: on disk or queued already
  // The device copy is skipped when the block would only be dropped.
  if (!ssd_->has_room()) {
    stats_.ssd_write_through_dropped++;
    return;
  }
  copier_->to_host(block, ssd_buf_.data());
  if (store_ssd(hash, parent, ssd_buf_.data())) {
    stats_.ssd_write_through++;
  } else {
    stats_.ssd_write_through_dropped++;
  }
}

void BlockManager::on_computed(SequenceBlocks& seq, int computed) {
  if (!index_) return;
  // Blocks that just became full and computed can be shared from now on. A block whose hash another block
  // already holds (the same prefix computed twice at once) simply stays uncached.
  const int full = computed / pool_.block_size();
  extend_hashes(seq, full);
  for (int i = seq.num_indexed_blocks; i < full; i++) {
    const BlockHash parent = i > 0 ? seq.block_hashes[i - 1] : seq.salt;
    const int32_t block = seq.table.blocks()[i];
    index_->insert(seq.block_hashes[i], block, parent);
    if (ssd_ && ssd_policy_ == SsdWritePolicy::kThrough) write_through(seq.block_hashes[i], parent, block);
  }
  seq.num_indexed_blocks = std::max(seq.num_indexed_blocks, full);
}

int BlockManager::persist_to_ssd() {
  if (!ssd_) return 0;
  int queued = 0;
  auto put_waiting = [&](const BlockHash& hash, const BlockHash& parent, const uint8_t* bytes) {
    if (ssd_->contains(hash)) return;
    // Shutdown may wait for the disk: a full queue is drained, not dropped.
    if (!ssd_->has_room()) ssd_->flush();
    if (store_ssd(hash, parent, bytes)) queued++;
  };
  if (hot_) hot_->for_each(put_waiting);
  if (index_) {
    for (int32_t b = 0; b < pool_.num_blocks(); b++) {
      auto hash = index_->hash_of(b);
      if (!hash || ssd_->contains(*hash)) continue;
      copier_->to_host(b, ssd_buf_.data());
      put_waiting(*hash, index_->parent_of(b), ssd_buf_.data());
    }
  }
  ssd_->flush();
  return queued;
}

}  // namespace keel::cache
