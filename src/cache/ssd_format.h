// The SSD tier's on-disk format (docs/FORMAT-SSD.md describes every byte): segment files named
// keel-NNNNNNNNNN.seg, each a sequence of self-describing records {header, payload}. Encoding, decoding and
// scanning live here so the tier and `keel cache` read the bytes the same way.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cache/block_hash.h"
#include "env/env.h"

namespace keel::cache::ssd {

inline constexpr uint8_t kMagic[4] = {'K', 'V', 'B', 'K'};
// 2: block hashes are SHA-256 (truncated) over the same fields, and a salted first block names its salt key as
// parent. Version 1 records (XXH3-128 keys) are read as kOldFormat: skipped and counted, never served.
inline constexpr uint16_t kFormatVersion = 2;
inline constexpr uint16_t kOldFormatVersion = 1;
inline constexpr size_t kHeaderBytes = 104;

struct RecordHeader {
  uint16_t version = kFormatVersion;
  ModelFingerprint fingerprint;
  BlockHash hash;
  BlockHash parent;
  uint32_t n_tokens = 0;
  KvLayout layout;
  uint64_t payload_length = 0;
  uint64_t header_check = 0;  // filled by encode_header / parse_header
  uint64_t record_check = 0;
};

// Why a record is not served.
enum class Problem {
  kNone,
  kBadMagic,         // bytes where a record should start are not one (garbage, or a flipped magic)
  kTruncatedHeader,  // the segment ends inside a header (a torn write)
  kVersion,          // a format version this keel does not read
  kHeaderChecksum,   // the header's own checksum does not match (bit flip)
  kTruncatedPayload, // the header is sound but the segment ends inside the payload (a torn write)
  kPayloadChecksum,  // the checksum over header and payload does not match (bit flip in the payload)
  kOldFormat,        // a sound record of an older format version (keys of another hash): never served
};
const char* problem_name(Problem p);

// Fills out[0..kHeaderBytes) for `header` followed by `payload`, computing both checksums.
void encode_header(const RecordHeader& header, std::span<const uint8_t> payload, uint8_t* out);
// Decodes and checks the header at data[0..available): magic, version, header checksum, and that the
// payload lies within `available`. The payload checksum is verify_payload()'s job. A record of an older version
// whose header checksum holds is kOldFormat, with `out->payload_length` set (the walk may skip it).
Problem parse_header(const uint8_t* data, size_t available, RecordHeader* out);
// Checks the record checksum of a record whose header parsed; `record` points at the header.
bool verify_payload(const uint8_t* record, const RecordHeader& header);
// The same check with the header's bytes and the payload apart (a payload read into the caller's buffer).
bool verify_record(const uint8_t* header_bytes, std::span<const uint8_t> payload, const RecordHeader& header);

struct ScannedRecord {
  uint64_t offset;  // of the header within the segment
  RecordHeader header;
};
struct ScanProblem {
  uint64_t offset;
  Problem problem;
};
struct SegmentScan {
  std::vector<ScannedRecord> records;
  std::vector<ScanProblem> problems;
};
// Walks a segment front to back. Sound records are listed; each run of bytes that is not one is listed
// once as a problem, and the walk resumes at the next record magic (a checksummed header that fails its
// check is not trusted for its length). With verify_payloads, a payload whose checksum fails is a problem
// too; otherwise only headers are read, which is what makes a restart fast.
SegmentScan scan_segment(const uint8_t* data, size_t size, bool verify_payloads);
// The same walk over a file read by offset (pread): headers only, or whole records with verify_payloads. A
// file that shrinks during the walk reads as ending where it now ends (a truncation), never as a fault.
// `size` is the size to walk (the file's when the walk began); an error only when a read fails.
Result<SegmentScan> scan_segment_file(const env::RandomAccessFile& file, uint64_t size, bool verify_payloads);

struct SegmentFile {
  uint64_t id;
  std::string name;
  std::string path;
};
std::string segment_name(uint64_t id);
std::optional<uint64_t> parse_segment_name(const std::string& name);
// keel's segment files in `dir`, oldest (lowest id) first; files of any other name are not keel's.
Result<std::vector<SegmentFile>> list_segments(env::Env* env, const std::string& dir);

// DIR/keel.lock: the process that writes a directory (a serving tier, `keel cache clear`) holds an exclusive
// flock on it; the file holds that process's pid.
inline constexpr char kLockName[] = "keel.lock";

// The index checkpoint, DIR/keel-index.ckpt: written at a clean shutdown, read and deleted at the next
// open, so a restart after a clean stop reads no record headers. It is only a shortcut: every block it
// names is still verified by get() before being served.
inline constexpr char kCheckpointName[] = "keel-index.ckpt";
inline constexpr uint8_t kCheckpointMagic[8] = {'K', 'V', 'B', 'K', 'C', 'K', 'P', 'T'};
inline constexpr uint32_t kCheckpointVersion = 1;

struct CheckpointEntry {
  BlockHash hash;
  uint64_t offset;
  uint64_t payload_length;
};
struct CheckpointSegment {
  uint64_t id = 0;
  uint64_t bytes = 0;  // the segment's size when the checkpoint was written
  std::vector<CheckpointEntry> entries;
};
struct Checkpoint {
  ModelFingerprint fingerprint;
  std::vector<CheckpointSegment> segments;
};
std::string encode_checkpoint(const Checkpoint& checkpoint);
// Corruption when the magic, version, lengths or checksum do not match.
Result<Checkpoint> decode_checkpoint(std::string_view bytes);

}  // namespace keel::cache::ssd
