#include "cache/ssd_tier.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

#include "cache/ssd_format.h"

namespace keel::cache {


Result<std::unique_ptr<SsdTier>> SsdTier::open(env::Env* env, SsdTierOptions options) {
  if (options.dir.empty()) return invalid_argument("--ssd-cache-dir is empty");
  if (options.max_payload_bytes == 0) return invalid_argument("ssd cache: block size is 0 bytes");
  if (options.queue_blocks == 0) return invalid_argument("ssd cache: write queue of 0 blocks");
  KEEL_RETURN_IF_ERROR(env->create_private_dir(options.dir).with_context("--ssd-cache-dir"));
  if (!env->is_directory(options.dir)) return invalid_argument("--ssd-cache-dir {}: not a directory", options.dir);
  // Before anything is read or written: two writers would truncate and overwrite each other's segments.
  auto lock = env->lock_file(env::join_path(options.dir, ssd::kLockName));
  if (!lock.ok()) return lock.status().with_context("--ssd-cache-dir " + options.dir + " is in use");
  KEEL_RETURN_IF_ERROR(ssd::list_segments(env, options.dir).status().with_context("--ssd-cache-dir"));
  // Segments are the unit of eviction: at most an eighth of the cap each, so deleting one frees room
  // without emptying the cache, and at least one record so every block fits in one.
  const uint64_t one_record = ssd::kHeaderBytes + options.max_payload_bytes;
  options.segment_bytes = std::max(std::min(options.segment_bytes, options.max_bytes / 8), one_record);
  std::unique_ptr<SsdTier> tier(new SsdTier(env, std::move(options)));
  tier->lock_ = std::move(*lock);
  tier->rebuild();
  tier->writer_ = std::thread([t = tier.get()] { t->writer_loop(); });
  return tier;
}

SsdTier::SsdTier(env::Env* env, SsdTierOptions options)
    : env_(env), options_(std::move(options)), arena_(options_.queue_blocks * options_.max_payload_bytes),
      ring_(options_.queue_blocks), header_buf_(ssd::kHeaderBytes) {
  free_slots_.reserve(options_.queue_blocks);
  queued_.reserve(options_.queue_blocks);
  for (size_t s = options_.queue_blocks; s-- > 0;) free_slots_.push_back(s);
  uncommitted_.reserve(options_.queue_blocks);
}

SsdTier::~SsdTier() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  if (options_.checkpoint) write_checkpoint();
}

void SsdTier::write_checkpoint() {
  ssd::Checkpoint c;
  c.fingerprint = options_.fingerprint;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::unordered_map<uint64_t, size_t> position;
    for (const auto& [id, seg] : segments_) {
      position[id] = c.segments.size();
      c.segments.push_back(ssd::CheckpointSegment{id, seg.bytes, {}});
    }
    for (const auto& [hash, loc] : index_) {
      c.segments[position.at(loc.segment)].entries.push_back(ssd::CheckpointEntry{hash, loc.offset, loc.payload_length});
    }
  }
  Status s = write_private_atomic(env::join_path(options_.dir, ssd::kCheckpointName), ssd::encode_checkpoint(c));
  if (!s.ok()) spdlog::warn("ssd cache: index checkpoint not written (the next start scans): {}", s.message());
}

// A temporary file (created exclusively, 0600; one left by a crash is removed first), fsync, rename, fsync
// of the directory.
Status SsdTier::write_private_atomic(const std::string& path, const std::string& contents) {
  const std::string tmp = path + ".tmp";
  if (env_->file_exists(tmp)) KEEL_RETURN_IF_ERROR(env_->remove_file(tmp));
  KEEL_ASSIGN_OR_RETURN(auto file, env_->create_new_file(tmp));
  KEEL_RETURN_IF_ERROR(file->append(contents.data(), contents.size()));
  KEEL_RETURN_IF_ERROR(file->sync());
  KEEL_RETURN_IF_ERROR(file->close());
  KEEL_RETURN_IF_ERROR(env_->rename_file(tmp, path));
  return env_->sync_dir(options_.dir);
}

void SsdTier::rebuild() {
  const uint64_t start = env_->now_micros();
  auto segments = ssd::list_segments(env_, options_.dir);
  if (!segments.ok()) {
    spdlog::warn("ssd cache: {}", segments.status().message());
    return;
  }
  // A checkpoint is used once: deleted before anything is written, so one left behind by a crash can
  // never describe segments that changed after it.
  std::unordered_map<uint64_t, const ssd::CheckpointSegment*> from_checkpoint;
  std::optional<ssd::Checkpoint> checkpoint;
  const std::string checkpoint_path = env::join_path(options_.dir, ssd::kCheckpointName);
  if (env_->file_exists(checkpoint_path)) {
    auto bytes = env_->read_file(checkpoint_path);
    auto decoded = bytes.ok() ? ssd::decode_checkpoint(*bytes) : Result<ssd::Checkpoint>(bytes.status());
    if (!decoded.ok()) {
      spdlog::warn("ssd cache: ignoring the index checkpoint: {}", decoded.status().message());
    } else if (options_.checkpoint && decoded->fingerprint == options_.fingerprint) {
      checkpoint = std::move(*decoded);
      for (const auto& seg : checkpoint->segments) from_checkpoint[seg.id] = &seg;
    }
    Status removed = env_->remove_file(checkpoint_path);
    if (removed.ok()) removed = env_->sync_dir(options_.dir);
    if (!removed.ok()) spdlog::warn("ssd cache: {}", removed.message());
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (const ssd::SegmentFile& file : *segments) {
    next_segment_id_ = std::max(next_segment_id_, file.id + 1);
    Segment seg;
    seg.path = file.path;
    auto opened = env_->open_random_access(file.path);
    auto size = opened.ok() ? (*opened)->size() : Result<uint64_t>(opened.status());
    if (!size.ok()) {
      spdlog::warn("ssd cache: skipping segment: {}", size.status().message());
      auto listed = env_->file_size(file.path);
      seg.bytes = listed.ok() ? *listed : 0;
      stats_.bytes_on_disk += seg.bytes;
      segments_.emplace(file.id, std::move(seg));
      continue;
    }
    seg.bytes = *size;
    seg.file = std::shared_ptr<env::RandomAccessFile>(std::move(*opened));
    if (auto it = from_checkpoint.find(file.id); it != from_checkpoint.end() && it->second->bytes == seg.bytes) {
      for (const ssd::CheckpointEntry& e : it->second->entries) {
        if (e.offset > seg.bytes || e.payload_length > seg.bytes - e.offset ||
            ssd::kHeaderBytes > seg.bytes - e.offset - e.payload_length)
          continue;  // cannot lie within the segment: not trusted
        index_.insert_or_assign(e.hash, Location{file.id, e.offset, e.payload_length});
        seg.hashes.push_back(e.hash);
      }
      stats_.segments_from_checkpoint++;
      stats_.bytes_on_disk += seg.bytes;
      segments_.emplace(file.id, std::move(seg));
      continue;
    }
    auto scanned = ssd::scan_segment_file(*seg.file, seg.bytes, /*verify_payloads=*/false);
    if (!scanned.ok()) {
      spdlog::warn("ssd cache: skipping segment: {}", scanned.status().message());
      stats_.bytes_on_disk += seg.bytes;
      segments_.emplace(file.id, std::move(seg));
      continue;
    }
    const ssd::SegmentScan& scan = *scanned;
    stats_.records_scanned += scan.records.size() + scan.problems.size();
    for (const ssd::ScanProblem& p : scan.problems)
      (p.problem == ssd::Problem::kOldFormat ? stats_.skipped_old_format : stats_.skipped_corrupt)++;
    for (const ssd::ScannedRecord& r : scan.records) {
      if (r.header.fingerprint != options_.fingerprint || !(r.header.layout == options_.layout)) {
        stats_.skipped_other_model++;
        continue;
      }
      // A block written twice (evicted from the index, written again) is served from its newest copy.
      index_.insert_or_assign(r.header.hash, Location{file.id, r.offset, r.header.payload_length});
      seg.hashes.push_back(r.header.hash);
    }
    stats_.bytes_on_disk += seg.bytes;
    segments_.emplace(file.id, std::move(seg));
  }
  stats_.rebuild_micros = env_->now_micros() - start;
  if (stats_.skipped_corrupt > 0)
    spdlog::warn("ssd cache {}: skipped {} damaged records", options_.dir, stats_.skipped_corrupt);
}

bool SsdTier::put(const BlockHash& hash, const BlockHash& parent, uint32_t n_tokens,
                  std::span<const uint8_t> payload) {
  size_t slot;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.puts++;
    if (stopping_) return false;
    if (payload.size() > options_.max_payload_bytes) {
      stats_.dropped_too_large++;
      return false;
    }
    if (index_.count(hash) > 0) {
      stats_.duplicates++;
      return true;
    }
    if (queued_.count(hash) > 0) {
      stats_.duplicates++;
      return true;
    }
    if (env_->now_micros() < paused_until_) {
      stats_.dropped_paused++;
      return false;
    }
    if (free_slots_.empty()) {
      stats_.dropped_queue_full++;
      return false;
    }
    slot = free_slots_.back();
    free_slots_.pop_back();
  }
  std::memcpy(arena_.data() + slot * options_.max_payload_bytes, payload.data(), payload.size());
  {
    std::lock_guard<std::mutex> lock(mu_);
    ring_[(ring_head_ + ring_count_) % ring_.size()] =
        Pending{hash, parent, n_tokens, payload.size(), slot, next_ticket_++};
    ring_count_++;
    queued_.emplace(hash, Queued{slot, payload.size()});
  }
  work_cv_.notify_one();
  return true;
}

bool SsdTier::get(const BlockHash& hash, std::span<uint8_t> out, size_t* n) {
  Location loc;
  std::shared_ptr<env::RandomAccessFile> file;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = index_.find(hash);
    if (it == index_.end()) {
      // Still in the write queue: served from its copy there, so that a block sent down is found at once.
      auto q = queued_.find(hash);
      if (q == queued_.end() || out.size() < q->second.length) {
        stats_.misses++;
        return false;
      }
      std::memcpy(out.data(), arena_.data() + q->second.slot * options_.max_payload_bytes, q->second.length);
      if (n != nullptr) *n = q->second.length;
      stats_.hits++;
      stats_.queue_hits++;
      return true;
    }
    loc = it->second;
    Segment& seg = segments_.at(loc.segment);
    if (!seg.file) {
      auto fresh = env_->open_random_access(seg.path);
      if (fresh.ok()) seg.file = std::shared_ptr<env::RandomAccessFile>(std::move(*fresh));
    }
    file = seg.file;
  }
  if (out.size() < loc.payload_length) {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.misses++;
    return false;
  }
  // pread, never a map: a segment truncated under us reads short (a miss), it cannot raise SIGBUS.
  enum class Outcome { kServed, kTruncated, kCorrupt } outcome = Outcome::kCorrupt;
  uint8_t head[ssd::kHeaderBytes];
  std::span<uint8_t> payload = out.first(loc.payload_length);
  if (file) {
    auto got_head = file->read_at(loc.offset, head, sizeof(head));
    auto got_payload = got_head.ok() && *got_head == sizeof(head)
                           ? file->read_at(loc.offset + ssd::kHeaderBytes, payload.data(), payload.size())
                           : Result<size_t>(size_t{0});
    ssd::RecordHeader h;
    if (!got_head.ok() || !got_payload.ok()) {
      outcome = Outcome::kCorrupt;
    } else if (*got_head < sizeof(head) || *got_payload < payload.size()) {
      outcome = Outcome::kTruncated;
    } else if (ssd::parse_header(head, ssd::kHeaderBytes + loc.payload_length, &h) == ssd::Problem::kNone &&
               h.hash == hash && h.fingerprint == options_.fingerprint && h.layout == options_.layout &&
               h.payload_length == loc.payload_length && ssd::verify_record(head, payload, h)) {
      outcome = Outcome::kServed;
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (outcome != Outcome::kServed) {
    if (outcome == Outcome::kTruncated) {
      stats_.truncated_reads++;
      stats_.misses++;
      spdlog::warn("ssd cache: block {} in segment {} at offset {}: the segment ends before it (truncated); not "
                   "served", hash.hex(), loc.segment, loc.offset);
    } else {
      stats_.corrupt_reads++;
      spdlog::warn("ssd cache: block {} in segment {} at offset {} failed verification; not served", hash.hex(),
                   loc.segment, loc.offset);
    }
    auto it = index_.find(hash);
    if (it != index_.end() && it->second.segment == loc.segment && it->second.offset == loc.offset) index_.erase(it);
    return false;
  }
  if (n != nullptr) *n = loc.payload_length;
  stats_.hits++;
  return true;
}

bool SsdTier::has_room() const {
  std::lock_guard<std::mutex> lock(mu_);
  return !stopping_ && !free_slots_.empty() && env_->now_micros() >= paused_until_;
}

bool SsdTier::contains(const BlockHash& hash) const {
  std::lock_guard<std::mutex> lock(mu_);
  return index_.count(hash) > 0 || queued_.count(hash) > 0;
}

size_t SsdTier::count_prefix(std::span<const BlockHash> hashes) const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  while (n < hashes.size() && (index_.count(hashes[n]) > 0 || queued_.count(hashes[n]) > 0)) n++;
  return n;
}

void SsdTier::flush() {
  std::unique_lock<std::mutex> lock(mu_);
  const uint64_t target = next_ticket_ - 1;
  done_cv_.wait(lock, [&] { return done_ticket_ >= target; });
}

SsdTierStats SsdTier::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  SsdTierStats s = stats_;
  s.blocks = index_.size();
  s.segments = segments_.size();
  s.paused = env_->now_micros() < paused_until_;
  return s;
}

void SsdTier::writer_loop() {
  std::vector<Pending> batch;
  batch.reserve(options_.queue_blocks);
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    work_cv_.wait(lock, [&] { return ring_count_ > 0 || stopping_; });
    if (ring_count_ == 0 && stopping_) break;
    batch.clear();
    for (; ring_count_ > 0; ring_count_--) {
      batch.push_back(ring_[ring_head_]);
      ring_head_ = (ring_head_ + 1) % ring_.size();
    }
    const bool paused = env_->now_micros() < paused_until_;
    if (paused) stats_.dropped_paused += batch.size();
    lock.unlock();
    if (!paused) write_batch(batch);
    lock.lock();
    for (const Pending& p : batch) {
      queued_.erase(p.hash);
      free_slots_.push_back(p.slot);
      done_ticket_ = std::max(done_ticket_, p.ticket);
    }
    done_cv_.notify_all();
  }
  lock.unlock();
  (void)commit();
  close_active();
}

void SsdTier::write_batch(std::vector<Pending>& batch) {
  const uint64_t cap = current_cap();
  for (size_t i = 0; i < batch.size(); i++) {
    const Pending& p = batch[i];
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (index_.count(p.hash) > 0) {
        stats_.duplicates++;
        continue;
      }
    }
    if (!write_one(p, cap)) {
      std::lock_guard<std::mutex> lock(mu_);
      stats_.dropped_failed += batch.size() - i - 1;
      return;
    }
  }
  // One fsync for the whole batch (group commit), then the batch becomes visible.
  (void)commit();
}

// Appends one record; false when writing must stop for this batch (the failure is already handled).
bool SsdTier::write_one(const Pending& p, uint64_t cap) {
  const uint64_t need = ssd::kHeaderBytes + p.length;
  if (need > cap || !ensure_room(need, cap)) {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.dropped_too_large++;
    return true;
  }
  uint64_t active_bytes = 0;
  if (active_) {
    std::lock_guard<std::mutex> lock(mu_);
    active_bytes = segments_.at(active_id_).bytes;
  }
  if (active_ && active_bytes > 0 && active_bytes + need > options_.segment_bytes) {
    if (!commit()) return false;
    close_active();
    active_bytes = 0;
  }
  if (!active_) {
    Status s = open_segment();
    if (!s.ok()) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        stats_.dropped_failed++;
      }
      on_write_failure(s);
      return false;
    }
  }
  const uint8_t* payload = arena_.data() + p.slot * options_.max_payload_bytes;
  ssd::RecordHeader h;
  h.fingerprint = options_.fingerprint;
  h.hash = p.hash;
  h.parent = p.parent;
  h.n_tokens = p.n_tokens;
  h.layout = options_.layout;
  ssd::encode_header(h, std::span(payload, p.length), header_buf_.data());
  Status s = active_->append(header_buf_.data(), header_buf_.size());
  if (s.ok()) s = active_->append(payload, p.length);
  if (!s.ok()) {
    // Part of the record may be on disk: count what might be there, as the cap counts what keel wrote.
    auto size = env_->file_size(segments_.at(active_id_).path);
    {
      std::lock_guard<std::mutex> lock(mu_);
      Segment& seg = segments_.at(active_id_);
      uint64_t now_bytes = size.ok() ? std::max(*size, seg.bytes) : seg.bytes + need;
      stats_.bytes_on_disk += now_bytes - seg.bytes;
      seg.bytes = now_bytes;
      stats_.dropped_failed++;
    }
    on_write_failure(s);
    return false;
  }
  std::lock_guard<std::mutex> lock(mu_);
  segments_.at(active_id_).bytes += need;
  stats_.bytes_on_disk += need;
  uncommitted_.push_back(Written{p.hash, active_bytes, p.length});
  return true;
}

uint64_t SsdTier::current_cap() {
  uint64_t cap = options_.max_bytes;
  // Keep one segment of the disk free for everyone else; a disk filled by others shrinks the cache.
  auto free_bytes = env_->disk_free_bytes(options_.dir);
  if (free_bytes.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    uint64_t headroom = *free_bytes > options_.segment_bytes ? *free_bytes - options_.segment_bytes : 0;
    cap = std::min(cap, stats_.bytes_on_disk + headroom);
  }
  return cap;
}

bool SsdTier::ensure_room(uint64_t need, uint64_t cap) {
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stats_.bytes_on_disk + need <= cap) return true;
      if (segments_.empty()) return false;
      if (!(active_ && segments_.begin()->first == active_id_)) {
        evict_oldest_segment();
        continue;
      }
    }
    // The oldest segment is the one being written: finish it first.
    if (!commit()) return false;
    close_active();
  }
}

Status SsdTier::open_segment() {
  const uint64_t id = next_segment_id_++;
  const std::string path = env::join_path(options_.dir, ssd::segment_name(id));
  // Exclusive: a file of this name that exists already (no keel writer made it) is never truncated.
  KEEL_ASSIGN_OR_RETURN(auto file, env_->create_new_file(path));
  std::lock_guard<std::mutex> lock(mu_);
  Segment seg;
  seg.path = path;
  segments_.emplace(id, std::move(seg));
  active_ = std::move(file);
  active_id_ = id;
  return Status();
}

bool SsdTier::commit() {
  if (!active_ || uncommitted_.empty()) return true;
  Status s = active_->sync();
  if (!s.ok()) {
    on_write_failure(s);
    return false;
  }
  std::lock_guard<std::mutex> lock(mu_);
  Segment& seg = segments_.at(active_id_);
  for (const Written& w : uncommitted_) {
    index_.insert_or_assign(w.hash, Location{active_id_, w.offset, w.payload_length});
    seg.hashes.push_back(w.hash);
  }
  stats_.written += uncommitted_.size();
  uncommitted_.clear();
  return true;
}

void SsdTier::close_active() {
  if (!active_) return;
  (void)active_->close();
  active_.reset();
}

void SsdTier::on_write_failure(const Status& s) {
  const bool full = env::is_disk_full(s);
  // Records appended since the last fsync are not known to be durable: they are never published. A later
  // restart may still find them whole (then their checksums prove them) or torn (then they are skipped).
  const size_t lost = uncommitted_.size();
  uncommitted_.clear();
  close_active();
  std::lock_guard<std::mutex> lock(mu_);
  stats_.dropped_failed += lost;
  stats_.write_errors++;
  paused_until_ = env_->now_micros() + options_.pause_micros;
  if (full) {
    stats_.disk_full_events++;
    // Give back at least a segment's worth so writing can resume after the pause.
    uint64_t freed = 0;
    while (freed < options_.segment_bytes && !segments_.empty()) {
      freed += segments_.begin()->second.bytes;
      evict_oldest_segment();
    }
  }
  spdlog::warn("ssd cache: {}; writing paused for {} ms{}", s.message(), options_.pause_micros / 1000,
               full ? ", oldest segments evicted" : "");
}

void SsdTier::evict_oldest_segment() {
  auto it = segments_.begin();
  for (const BlockHash& h : it->second.hashes) {
    auto f = index_.find(h);
    if (f != index_.end() && f->second.segment == it->first) {
      index_.erase(f);
      stats_.blocks_evicted++;
    }
  }
  stats_.bytes_on_disk -= std::min(stats_.bytes_on_disk, it->second.bytes);
  stats_.segments_evicted++;
  const std::string path = it->second.path;
  segments_.erase(it);
  Status s = env_->remove_file(path);
  if (s.ok()) s = env_->sync_dir(options_.dir);
  if (!s.ok()) spdlog::warn("ssd cache: {}", s.message());
}

}  // namespace keel::cache
