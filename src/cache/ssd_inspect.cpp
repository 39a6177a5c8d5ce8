#include "cache/ssd_inspect.h"

namespace keel::cache::ssd {

uint64_t DirReport::bytes() const {
  uint64_t n = 0;
  for (const auto& s : segments) n += s.bytes;
  return n;
}

uint64_t DirReport::records() const {
  uint64_t n = 0;
  for (const auto& s : segments) n += s.records;
  return n;
}

uint64_t DirReport::problems() const {
  uint64_t n = 0;
  for (const auto& s : segments) n += s.problems.size();
  return n;
}

uint64_t DirReport::old_format() const {
  uint64_t n = 0;
  for (const auto& s : segments) n += s.old_format;
  return n;
}

uint64_t DirReport::torn_tails() const {
  uint64_t n = 0;
  for (const auto& s : segments) n += s.torn_tail ? 1 : 0;
  return n;
}

std::map<std::string, FingerprintUsage> DirReport::by_fingerprint() const {
  std::map<std::string, FingerprintUsage> out;
  for (const auto& s : segments) {
    for (const auto& [fp, usage] : s.by_fingerprint) {
      out[fp].records += usage.records;
      out[fp].bytes += usage.bytes;
    }
  }
  return out;
}

std::optional<ModelFingerprint> DirReport::newest_fingerprint() const {
  for (auto it = segments.rbegin(); it != segments.rend(); ++it) {
    if (it->last_fingerprint) return it->last_fingerprint;
  }
  return std::nullopt;
}

namespace {

bool is_truncation(Problem p) { return p == Problem::kTruncatedHeader || p == Problem::kTruncatedPayload; }

// Moves the first truncation after the last sound record (and whatever the walk found after it, all inside
// the cut-short record) out of `problems` into `torn_tail`.
void split_torn_tail(const SegmentScan& scan, SegmentReport* seg) {
  const uint64_t last_record = scan.records.empty() ? 0 : scan.records.back().offset;
  for (size_t i = 0; i < seg->problems.size(); i++) {
    const ScanProblem& p = seg->problems[i];
    if (!is_truncation(p.problem) || (!scan.records.empty() && p.offset < last_record)) continue;
    seg->torn_tail = p;
    seg->problems.resize(i);
    return;
  }
}

}  // namespace

Result<DirReport> inspect_dir(env::Env* env, const std::string& dir, bool verify_payloads) {
  if (!env->is_directory(dir)) return not_found("--ssd-cache-dir {}: not a directory", dir);
  KEEL_ASSIGN_OR_RETURN(std::vector<SegmentFile> files, list_segments(env, dir));
  DirReport report;
  report.dir = dir;
  for (const SegmentFile& file : files) {
    SegmentReport seg;
    seg.file = file;
    // Read by offset, never mapped: a segment that shrinks while it is read cannot fault the reader. Without
    // the directory's lock (read-only commands do not take it) a running server may delete a segment between
    // listing and opening it: it is gone, not damaged.
    auto opened = env->open_random_access(file.path);
    if (!opened.ok() && opened.status().code() == Code::kNotFound) continue;
    if (!opened.ok()) return opened.status();
    KEEL_ASSIGN_OR_RETURN(seg.bytes, (*opened)->size());
    KEEL_ASSIGN_OR_RETURN(SegmentScan scan, scan_segment_file(**opened, seg.bytes, verify_payloads));
    seg.records = scan.records.size();
    for (const ScanProblem& p : scan.problems) {
      if (p.problem == Problem::kOldFormat) {
        seg.old_format++;
      } else {
        seg.problems.push_back(p);
      }
    }
    split_torn_tail(scan, &seg);
    for (const ScannedRecord& r : scan.records) {
      FingerprintUsage& u = seg.by_fingerprint[r.header.fingerprint.hex()];
      u.records++;
      u.bytes += kHeaderBytes + r.header.payload_length;
      seg.last_fingerprint = r.header.fingerprint;
    }
    report.segments.push_back(std::move(seg));
  }
  return report;
}

Result<ClearReport> clear_dir(env::Env* env, const std::string& dir, std::optional<ModelFingerprint> keep) {
  if (!env->is_directory(dir)) return not_found("--ssd-cache-dir {}: not a directory", dir);
  auto lock = env->lock_file(env::join_path(dir, kLockName));
  if (!lock.ok()) return lock.status().with_context("--ssd-cache-dir " + dir + " is in use");
  KEEL_ASSIGN_OR_RETURN(DirReport report, inspect_dir(env, dir, /*verify_payloads=*/false));
  ClearReport out;
  // The index checkpoint would name removed segments; without it the next start scans.
  const std::string checkpoint = env::join_path(dir, kCheckpointName);
  if (env->file_exists(checkpoint)) KEEL_RETURN_IF_ERROR(env->remove_file(checkpoint));
  for (const SegmentReport& seg : report.segments) {
    if (keep && seg.by_fingerprint.count(keep->hex()) > 0) {
      out.segments_kept++;
      continue;
    }
    KEEL_RETURN_IF_ERROR(env->remove_file(seg.file.path));
    out.segments_removed++;
    out.bytes_removed += seg.bytes;
  }
  KEEL_RETURN_IF_ERROR(env->sync_dir(dir));
  return out;
}

}  // namespace keel::cache::ssd
