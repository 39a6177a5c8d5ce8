// What `keel cache ls|stats|verify|clear` reports about an SSD cache directory, as data.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cache/ssd_format.h"

namespace keel::cache::ssd {

struct FingerprintUsage {
  uint64_t records = 0;
  uint64_t bytes = 0;  // headers + payloads
};

struct SegmentReport {
  SegmentFile file;
  uint64_t bytes = 0;
  uint64_t records = 0;
  // Damage: runs of bytes that are not a sound record, each listed once. Never served.
  std::vector<ScanProblem> problems;
  // A record cut short by the end of the segment with nothing sound after it: what a crash (or a full disk)
  // leaves at the tail of the segment being written. Skipped like damage, but expected: each process writes
  // only segments it created, so the tail is never appended to.
  std::optional<ScanProblem> torn_tail;
  // Sound records of an older format version: not damage, never served; `keel cache clear` removes them.
  uint64_t old_format = 0;
  std::map<std::string, FingerprintUsage> by_fingerprint;  // hex fingerprint → usage
  std::optional<ModelFingerprint> last_fingerprint;        // of the segment's last sound record
};

struct DirReport {
  std::string dir;
  std::vector<SegmentReport> segments;
  uint64_t bytes() const;
  uint64_t records() const;
  uint64_t problems() const;  // damage, torn tails excluded
  uint64_t torn_tails() const;
  uint64_t old_format() const;
  std::map<std::string, FingerprintUsage> by_fingerprint() const;
  // The fingerprint of the most recently written sound record.
  std::optional<ModelFingerprint> newest_fingerprint() const;
};

// Reads every segment of `dir`; with verify_payloads every payload checksum is checked too.
Result<DirReport> inspect_dir(env::Env* env, const std::string& dir, bool verify_payloads);

struct ClearReport {
  uint64_t segments_removed = 0;
  uint64_t bytes_removed = 0;
  uint64_t segments_kept = 0;
};
// Removes keel's segment files (and the index checkpoint); with `keep`, only the segments holding no sound
// record of that fingerprint. Takes the directory's lock first: refused (naming the holder's pid) while a
// server owns the directory. inspect_dir takes no lock: it only reads, by offset, and keel never shrinks a
// segment it did not just create (a running server appends and deletes whole segments).
Result<ClearReport> clear_dir(env::Env* env, const std::string& dir, std::optional<ModelFingerprint> keep);

}  // namespace keel::cache::ssd
