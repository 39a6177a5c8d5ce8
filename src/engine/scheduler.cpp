#include "engine/scheduler.h"

#include <algorithm>

namespace keel::engine {

Scheduler::Scheduler(int num_blocks, int block_size, int max_num_seqs, int max_num_batched_tokens,
                     std::optional<cache::ModelFingerprint> prefix_caching)
    : pool_(num_blocks, block_size),
      fingerprint_(prefix_caching),
      max_num_seqs_(max_num_seqs),
      max_num_batched_tokens_(max_num_batched_tokens) {
  if (fingerprint_) index_.emplace(num_blocks);
}

void Scheduler::set_hot_tier(cache::HotTier* tier, KvBlockCopier* copier) {
  hot_ = index_ ? tier : nullptr;
  copier_ = copier;
}

void Scheduler::set_ssd_tier(cache::SsdTier* tier, KvBlockCopier* copier, size_t block_bytes) {
  ssd_ = index_ ? tier : nullptr;
  copier_ = copier;
  ssd_buf_.assign(ssd_ ? block_bytes : 0, 0);
}

void Scheduler::store_ssd(const cache::BlockHash& hash, const cache::BlockHash& parent, const uint8_t* bytes) {
  if (ssd_->put(hash, parent, static_cast<uint32_t>(pool_.block_size()), std::span(bytes, ssd_buf_.size())))
    prefix_stats_.ssd_stores++;
}

int Scheduler::count_lower(const Sequence* seq, int from, int to) const {
  int j = from;
  while (j < to && ((hot_ && hot_->contains(seq->block_hashes[j])) || (ssd_ && ssd_->contains(seq->block_hashes[j]))))
    j++;
  return j - from;
}

void Scheduler::add(std::unique_ptr<Sequence> seq) { waiting_.push_back(std::move(seq)); }

int Scheduler::evict_cached() {
  const uint64_t before = prefix_stats_.evictions;
  (void)make_room(pool_.num_blocks());  // stops when nothing evictable is left
  return static_cast<int>(prefix_stats_.evictions - before);
}

int Scheduler::available_blocks() const {
  return pool_.num_free() + (index_ ? static_cast<int>(index_->num_evictable()) : 0);
}

bool Scheduler::make_room(int n) {
  while (pool_.num_free() < n) {
    if (!index_) return false;
    auto evicted = index_->evict_lru();
    if (!evicted) return false;
    if (hot_) {
      // Down a tier before the memory is reused; a block the tier holds already is only touched.
      const bool had = hot_->contains(evicted->hash);
      std::optional<cache::HotTier::Evicted> dropped;
      uint8_t* slot = hot_->put(evicted->hash, evicted->parent, &dropped);
      // The block the host tier dropped is still in the slot: down to the SSD before it is overwritten.
      if (dropped && ssd_) store_ssd(dropped->hash, dropped->parent, slot);
      if (!had) {
        copier_->to_host(evicted->block, slot);
        prefix_stats_.hot_stores++;
      }
    } else if (ssd_ && !ssd_->contains(evicted->hash)) {
      copier_->to_host(evicted->block, ssd_buf_.data());
      store_ssd(evicted->hash, evicted->parent, ssd_buf_.data());
    }
    (void)pool_.reclaim(evicted->block);  // every evictable block is kept by the pool
    prefix_stats_.evictions++;
  }
  return true;
}

void Scheduler::release_blocks(Sequence* seq) {
  std::vector<int32_t> blocks = seq->table.take_blocks();
  for (auto it = blocks.rbegin(); it != blocks.rend(); ++it) {
    auto zero = pool_.release_and_keep(*it);
    if (zero.ok() && *zero && !(index_ && index_->on_released(*it))) (void)pool_.reclaim(*it);
  }
  seq->num_indexed_blocks = 0;
}

void Scheduler::extend_hashes(Sequence* seq, int num_blocks) {
  const int bs = pool_.block_size();
  auto& hashes = seq->block_hashes;
  while (static_cast<int>(hashes.size()) < num_blocks) {
    const cache::BlockHash parent = hashes.empty() ? cache::BlockHash{} : hashes.back();
    const size_t begin = hashes.size() * bs;
    hashes.push_back(cache::block_hash(*fingerprint_, parent, std::span(seq->tokens).subspan(begin, bs)));
  }
}

int Scheduler::admit(Sequence* seq, int budget) {
  const int bs = pool_.block_size();
  const int len = static_cast<int>(seq->tokens.size());
  std::vector<int32_t> hits;
  int cap = 0;
  if (index_) {
    // The last token is always computed: its logits give the next token.
    cap = (len - 1) / bs;
    extend_hashes(seq, cap);
    hits = index_->lookup(std::span(seq->block_hashes).first(cap));
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
  if (available_blocks() - kept < need) return -1;
  for (int32_t b : hits) {
    if (pool_.is_kept(b)) {
      (void)pool_.revive(b);
      index_->on_acquired(b);
    } else {
      (void)pool_.acquire(b);
    }
  }
  (void)seq->table.append_full_blocks(hits);  // the table is empty
  // Most recently used first, so that blocks sent down by make_room do not push them out of the tier.
  for (int i = hit; i < hit + lower; i++)
    if (hot_ && hot_->contains(seq->block_hashes[i])) (void)hot_->get(seq->block_hashes[i]);
  (void)make_room(need);  // cannot fail: checked above
  // Only if the host tier is smaller than what make_room sent down can it have lost some of them (and the
  // SSD not have them yet: its writes become visible later).
  if (lower > 0) lower = count_lower(seq, hit, hit + lower);
  auto up = pool_.allocate(lower);  // within `need`
  int hot = 0, ssd = 0;
  for (int i = 0; i < lower; i++) {
    const cache::BlockHash& h = seq->block_hashes[hit + i];
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
      for (int k = i; k < lower; k++) (void)pool_.release((*up)[k]);
      up->resize(i);
      break;
    }
    index_->insert(h, b, hit + i > 0 ? seq->block_hashes[hit + i - 1] : cache::BlockHash{});
  }
  lower = hot + ssd;
  (void)seq->table.append_full_blocks(*up);
  const int cached = (hit + lower) * bs;
  // A shorter hot run (see above) leaves more to compute; the chunk stays within the budget and within the
  // blocks made room for.
  const int chunk = std::min(len - cached, budget);
  (void)seq->table.append(pool_, chunk);
  seq->num_computed = cached;
  seq->num_indexed_blocks = hit + lower;
  if (seq->num_preemptions == 0) seq->cached_tokens = cached;
  prefix_stats_.hit_blocks += hit;
  prefix_stats_.hot_hit_blocks += hot;
  prefix_stats_.ssd_hit_blocks += ssd;
  prefix_stats_.miss_blocks += cap - hit - lower;
  return chunk;
}

void Scheduler::preempt(Sequence* seq) {
  release_blocks(seq);
  seq->num_computed = 0;
  seq->num_preemptions++;
  preemptions_++;
  auto it = std::find_if(running_.begin(), running_.end(), [&](auto& p) { return p.get() == seq; });
  waiting_.push_front(std::move(*it));
  running_.erase(it);
}

StepPlan Scheduler::schedule() {
  StepPlan plan;
  int budget = max_num_batched_tokens_;
  // Running sequences first, oldest first.
  for (size_t i = 0; i < running_.size() && budget > 0;) {
    Sequence* seq = running_[i].get();
    const int remaining = static_cast<int>(seq->tokens.size()) - seq->num_computed;
    const int n = std::min(remaining, budget);
    // Free blocks by preempting the newest running sequences until this one fits.
    bool self_preempted = false;
    const int need = seq->table.blocks_needed(n);
    while (available_blocks() < need) {
      Sequence* victim = running_.back().get();
      plan.preempted.push_back(victim->id);  // newer than seq, so not yet planned this step
      preempt(victim);
      if (victim == seq) {
        self_preempted = true;
        break;
      }
    }
    if (self_preempted) break;
    (void)make_room(need);  // cannot fail: checked above
    (void)seq->table.append(pool_, n);
    plan.chunks.push_back(Chunk{seq, seq->num_computed, seq->num_computed + n});
    budget -= n;
    i++;
  }
  // Then waiting sequences in arrival order, while they fit.
  while (!waiting_.empty() && budget > 0 && static_cast<int>(running_.size()) < max_num_seqs_) {
    Sequence* seq = waiting_.front().get();
    const int n = admit(seq, budget);
    if (n < 0) break;
    plan.chunks.push_back(Chunk{seq, seq->num_computed, seq->num_computed + n});
    budget -= n;
    running_.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
  }
  return plan;
}

void Scheduler::advance(const StepPlan& plan) {
  for (const Chunk& c : plan.chunks) {
    Sequence* seq = c.seq;
    seq->num_computed = c.end;
    if (!index_) continue;
    // Blocks that just became full and computed can be shared from now on. A block whose hash another
    // block already holds (the same prefix computed twice at once) simply stays uncached.
    const int full = c.end / pool_.block_size();
    extend_hashes(seq, full);
    for (int i = seq->num_indexed_blocks; i < full; i++)
      index_->insert(seq->block_hashes[i], seq->table.blocks()[i], i > 0 ? seq->block_hashes[i - 1] : cache::BlockHash{});
    seq->num_indexed_blocks = std::max(seq->num_indexed_blocks, full);
  }
}

bool Scheduler::finish(uint64_t id) {
  auto it = std::find_if(running_.begin(), running_.end(), [&](auto& p) { return p->id == id; });
  if (it != running_.end()) {
    release_blocks(it->get());
    running_.erase(it);
    return true;
  }
  auto wt = std::find_if(waiting_.begin(), waiting_.end(), [&](auto& p) { return p->id == id; });
  if (wt != waiting_.end()) {
    release_blocks(wt->get());
    waiting_.erase(wt);
    return true;
  }
  return false;
}

Sequence* Scheduler::find(uint64_t id) {
  for (auto& s : running_)
    if (s->id == id) return s.get();
  for (auto& s : waiting_)
    if (s->id == id) return s.get();
  return nullptr;
}

}  // namespace keel::engine
