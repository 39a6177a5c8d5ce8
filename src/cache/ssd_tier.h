// SsdTier: KV blocks on local disk (`--ssd-cache-dir`, `--ssd-cache-max-size`), persistent across restarts.
//
// put() copies the block into a bounded queue and returns at once; a background writer appends records to
// the newest segment through env::Env, fsyncs, and only then makes them visible to get(). When the queue is
// full (the disk is slower than eviction) blocks are dropped and counted: decoding never waits for the
// disk. The bytes of keel's segment files never exceed max_bytes: the oldest segments are deleted first.
// ENOSPC/EDQUOT (or any write error) pauses writing for a while and evicts; it never reaches a caller.
//
// One process owns a directory: open() takes an exclusive flock on DIR/keel.lock (released when the tier is
// destroyed or the process dies, kill -9 included) and refuses a directory another process holds, naming its
// pid. Files are created O_EXCL|O_NOFOLLOW, mode 0600, in a directory created 0700, and every create, rename
// and unlink is followed by an fsync of the directory. Blocks are read with pread, never through a map: a
// segment truncated under the tier reads short, which is a counted miss (truncated_reads), never a SIGBUS.
//
// open() rebuilds the index by reading every record header (docs/FORMAT-SSD.md), or, after a clean
// shutdown, from the index checkpoint written then (validated: checksum, fingerprint, segment sizes).
// Records of another model fingerprint are ignored; records that fail a check are skipped and counted. get() re-verifies the
// checksum over header and payload before serving a block, so a bit flip on disk is never served.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "cache/block_hash.h"
#include "env/env.h"

namespace keel::cache {

struct SsdTierOptions {
  std::string dir;
  uint64_t max_bytes = 100ull << 30;
  // A segment is closed once it reaches this size; eviction deletes whole segments, so the cap is kept
  // to within one segment of slack by keeping segments small next to it (open() clamps to max_bytes / 8).
  uint64_t segment_bytes = 256ull << 20;
  size_t queue_blocks = 64;       // blocks waiting for the writer; puts beyond this are dropped
  size_t max_payload_bytes = 0;   // bytes of one KV block (a queue slot)
  ModelFingerprint fingerprint;
  KvLayout layout;
  uint64_t pause_micros = 5'000'000;  // how long writing stops after a write error or a full disk
  bool checkpoint = true;             // write the index checkpoint at shutdown, use it at open
};

struct SsdTierStats {
  // What the index holds.
  uint64_t blocks = 0;
  uint64_t bytes_on_disk = 0;  // all keel segment files in the directory, any model
  uint64_t segments = 0;
  // open(): the rebuild.
  uint64_t rebuild_micros = 0;
  uint64_t segments_from_checkpoint = 0;  // segments whose headers were not read: the checkpoint named them
  uint64_t records_scanned = 0;
  uint64_t skipped_corrupt = 0;      // failed a check (torn, truncated, bit flip, unknown version)
  uint64_t skipped_other_model = 0;  // sound, but another fingerprint
  uint64_t skipped_old_format = 0;   // sound records of an older format version (other keys): never served
  // Writes.
  uint64_t puts = 0;
  uint64_t written = 0;
  uint64_t duplicates = 0;           // already on disk or queued
  uint64_t dropped_queue_full = 0;
  uint64_t dropped_paused = 0;
  uint64_t dropped_too_large = 0;
  uint64_t dropped_failed = 0;       // in a batch that hit a write error
  uint64_t write_errors = 0;
  uint64_t disk_full_events = 0;     // ENOSPC / EDQUOT
  uint64_t segments_evicted = 0;
  uint64_t blocks_evicted = 0;
  bool paused = false;
  // Reads.
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t corrupt_reads = 0;        // failed re-verification in get(): dropped from the index
  uint64_t truncated_reads = 0;      // the record's segment ended before it (shrunk under us): a miss, dropped
  uint64_t queue_hits = 0;           // hits served from the write queue (not yet on disk)
};

class SsdTier {
 public:
  // Creates the directory if needed (0700), locks it, rebuilds the index and starts the writer. Fails when the
  // directory cannot be created, locked (another process holds DIR/keel.lock: the error names its pid) or
  // listed; unreadable segments are counted, not fatal.
  static Result<std::unique_ptr<SsdTier>> open(env::Env* env, SsdTierOptions options);
  // Writes what is queued (or drops it while paused), stops the writer, then writes the index checkpoint.
  ~SsdTier();
  SsdTier(const SsdTier&) = delete;
  SsdTier& operator=(const SsdTier&) = delete;

  // Queues a block for writing; never waits for the disk. False when it was not queued (counted).
  bool put(const BlockHash& hash, const BlockHash& parent, uint32_t n_tokens, std::span<const uint8_t> payload);
  // Copies the block's payload into `out` after re-verifying it (or from the write queue while it waits
  // there); false on a miss, a corrupt record (then forgotten) or an `out` too small. Returns the payload size in *n when given.
  bool get(const BlockHash& hash, std::span<uint8_t> out, size_t* n = nullptr);
  // Whether a put() now would be queued rather than dropped: the queue has a free slot and writing is not
  // paused. Lets a caller skip producing the bytes (a device copy) of a block that would only be dropped.
  bool has_room() const;
  // On disk and visible, or queued for writing.
  bool contains(const BlockHash& hash) const;
  // How many leading hashes are on disk and visible, or queued.
  size_t count_prefix(std::span<const BlockHash> hashes) const;
  // Waits until every block queued before the call has been written (and is visible) or dropped.
  void flush();
  SsdTierStats stats() const;
  const SsdTierOptions& options() const { return options_; }
  // Host memory the write queue holds for the tier's life: queue_blocks slots of max_payload_bytes, reserved
  // at open (what the memory plan's "ssd queue" line sets aside).
  uint64_t queue_bytes() const { return arena_.size(); }

 private:
  struct Location {
    uint64_t segment;
    uint64_t offset;  // of the record header
    uint64_t payload_length;
  };
  struct Segment {
    std::string path;
    uint64_t bytes = 0;
    std::vector<BlockHash> hashes;  // records indexed from this segment
    std::shared_ptr<env::RandomAccessFile> file;  // opened on first read
  };
  struct Pending {
    BlockHash hash;
    BlockHash parent;
    uint32_t n_tokens;
    uint64_t length;
    size_t slot;
    uint64_t ticket;
  };
  struct Written {
    BlockHash hash;
    uint64_t offset;
    uint64_t payload_length;
  };

  SsdTier(env::Env* env, SsdTierOptions options);
  void rebuild();
  void write_checkpoint();
  Status write_private_atomic(const std::string& path, const std::string& contents);
  void writer_loop();
  void write_batch(std::vector<Pending>& batch);
  bool write_one(const Pending& p, uint64_t cap);
  bool ensure_room(uint64_t need, uint64_t cap);
  Status open_segment();
  bool commit();
  void close_active();
  void on_write_failure(const Status& s);
  void evict_oldest_segment();  // mu_ held
  uint64_t current_cap();

  env::Env* env_;
  SsdTierOptions options_;
  std::unique_ptr<env::FileLock> lock_;  // DIR/keel.lock, for the tier's life

  mutable std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  std::unordered_map<BlockHash, Location, Hash128Hasher> index_;
  std::map<uint64_t, Segment> segments_;  // by id: oldest first
  std::vector<uint8_t> arena_;            // queue_blocks slots of max_payload_bytes, reserved once
  std::vector<size_t> free_slots_;
  std::vector<Pending> ring_;             // the queue, queue_blocks entries
  struct Queued {
    size_t slot;
    uint64_t length;
  };
  // Blocks from put() until the writer is done with them (visible, or dropped): get() serves them from here.
  std::unordered_map<BlockHash, Queued, Hash128Hasher> queued_;
  size_t ring_head_ = 0;
  size_t ring_count_ = 0;
  uint64_t next_ticket_ = 1;
  uint64_t done_ticket_ = 0;
  uint64_t paused_until_ = 0;
  bool stopping_ = false;
  SsdTierStats stats_;

  // Writer thread only.
  std::unique_ptr<env::WritableFile> active_;
  uint64_t active_id_ = 0;
  uint64_t next_segment_id_ = 1;
  std::vector<Written> uncommitted_;
  std::vector<uint8_t> header_buf_;

  std::thread writer_;
};

}  // namespace keel::cache
