#include "cache/ssd_format.h"

#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include <algorithm>
#include <cstring>

namespace keel::cache::ssd {

namespace {

// Byte offsets within the header (docs/FORMAT-SSD.md).
constexpr size_t kOffVersion = 4;
constexpr size_t kOffHeaderBytes = 6;
constexpr size_t kOffFingerprint = 8;
constexpr size_t kOffHash = 24;
constexpr size_t kOffParent = 40;
constexpr size_t kOffTokens = 56;
constexpr size_t kOffLayers = 60;
constexpr size_t kOffKvHeads = 64;
constexpr size_t kOffHeadDim = 68;
constexpr size_t kOffBlockSize = 72;
constexpr size_t kOffKvDtype = 76;
constexpr size_t kOffPayloadLength = 80;
constexpr size_t kOffHeaderCheck = 88;
constexpr size_t kOffRecordCheck = 96;
static_assert(kOffRecordCheck + 8 == kHeaderBytes);

template <typename T>
void put(uint8_t* p, size_t off, T v) {
  std::memcpy(p + off, &v, sizeof(T));
}
template <typename T>
T get(const uint8_t* p, size_t off) {
  T v;
  std::memcpy(&v, p + off, sizeof(T));
  return v;
}
void put_hash(uint8_t* p, size_t off, const Hash128& h) {
  put(p, off, h.lo);
  put(p, off + 8, h.hi);
}
Hash128 get_hash(const uint8_t* p, size_t off) { return Hash128{get<uint64_t>(p, off), get<uint64_t>(p, off + 8)}; }

uint64_t record_checksum(const uint8_t* header, const uint8_t* payload, uint64_t n) {
  XXH3_state_t state;
  XXH3_64bits_reset(&state);
  XXH3_64bits_update(&state, header, kOffRecordCheck);
  XXH3_64bits_update(&state, payload, n);
  return XXH3_64bits_digest(&state);
}

bool has_magic(const uint8_t* p) { return std::memcmp(p, kMagic, sizeof(kMagic)) == 0; }

// The next offset >= from where a record magic starts, or size.
uint64_t next_magic(const uint8_t* data, size_t size, uint64_t from) {
  if (size < sizeof(kMagic)) return size;
  for (uint64_t o = from; o + sizeof(kMagic) <= size; o++) {
    const void* hit = std::memchr(data + o, kMagic[0], size - sizeof(kMagic) + 1 - o);
    if (hit == nullptr) return size;
    o = static_cast<const uint8_t*>(hit) - data;
    if (has_magic(data + o)) return o;
  }
  return size;
}

}  // namespace

const char* problem_name(Problem p) {
  switch (p) {
    case Problem::kNone: return "ok";
    case Problem::kBadMagic: return "not a record (bad magic)";
    case Problem::kTruncatedHeader: return "truncated header";
    case Problem::kVersion: return "unknown format version";
    case Problem::kHeaderChecksum: return "header checksum mismatch";
    case Problem::kTruncatedPayload: return "truncated payload";
    case Problem::kPayloadChecksum: return "payload checksum mismatch";
    case Problem::kOldFormat: return "older format version (not served)";
  }
  return "?";
}

void encode_header(const RecordHeader& h, std::span<const uint8_t> payload, uint8_t* out) {
  std::memset(out, 0, kHeaderBytes);
  std::memcpy(out, kMagic, sizeof(kMagic));
  put<uint16_t>(out, kOffVersion, h.version);
  put<uint16_t>(out, kOffHeaderBytes, static_cast<uint16_t>(kHeaderBytes));
  put_hash(out, kOffFingerprint, h.fingerprint);
  put_hash(out, kOffHash, h.hash);
  put_hash(out, kOffParent, h.parent);
  put<uint32_t>(out, kOffTokens, h.n_tokens);
  put<uint32_t>(out, kOffLayers, h.layout.num_layers);
  put<uint32_t>(out, kOffKvHeads, h.layout.num_kv_heads);
  put<uint32_t>(out, kOffHeadDim, h.layout.head_dim);
  put<uint32_t>(out, kOffBlockSize, h.layout.block_size);
  put<uint8_t>(out, kOffKvDtype, static_cast<uint8_t>(h.layout.kv_dtype));
  put<uint64_t>(out, kOffPayloadLength, payload.size());
  put<uint64_t>(out, kOffHeaderCheck, XXH3_64bits(out, kOffHeaderCheck));
  put<uint64_t>(out, kOffRecordCheck, record_checksum(out, payload.data(), payload.size()));
}

Problem parse_header(const uint8_t* p, size_t available, RecordHeader* out) {
  if (available < sizeof(kMagic)) {
    // A write torn inside the magic itself.
    return std::memcmp(p, kMagic, available) == 0 ? Problem::kTruncatedHeader : Problem::kBadMagic;
  }
  if (!has_magic(p)) return Problem::kBadMagic;
  if (available < kHeaderBytes) return Problem::kTruncatedHeader;
  const uint16_t version = get<uint16_t>(p, kOffVersion);
  if ((version != kFormatVersion && version != kOldFormatVersion) || get<uint16_t>(p, kOffHeaderBytes) != kHeaderBytes)
    return Problem::kVersion;
  if (get<uint64_t>(p, kOffHeaderCheck) != XXH3_64bits(p, kOffHeaderCheck)) return Problem::kHeaderChecksum;
  if (version == kOldFormatVersion) {
    // Same header layout, keys of another hash: its length is proven by the header checksum.
    out->version = version;
    out->payload_length = get<uint64_t>(p, kOffPayloadLength);
    return Problem::kOldFormat;
  }
  uint8_t dtype = get<uint8_t>(p, kOffKvDtype);
  if (dtype > static_cast<uint8_t>(DType::kBF16)) return Problem::kVersion;
  RecordHeader h;
  h.version = kFormatVersion;
  h.fingerprint = get_hash(p, kOffFingerprint);
  h.hash = get_hash(p, kOffHash);
  h.parent = get_hash(p, kOffParent);
  h.n_tokens = get<uint32_t>(p, kOffTokens);
  h.layout.num_layers = get<uint32_t>(p, kOffLayers);
  h.layout.num_kv_heads = get<uint32_t>(p, kOffKvHeads);
  h.layout.head_dim = get<uint32_t>(p, kOffHeadDim);
  h.layout.block_size = get<uint32_t>(p, kOffBlockSize);
  h.layout.kv_dtype = static_cast<DType>(dtype);
  h.payload_length = get<uint64_t>(p, kOffPayloadLength);
  h.header_check = get<uint64_t>(p, kOffHeaderCheck);
  h.record_check = get<uint64_t>(p, kOffRecordCheck);
  if (h.payload_length > available - kHeaderBytes) return Problem::kTruncatedPayload;
  *out = h;
  return Problem::kNone;
}

bool verify_payload(const uint8_t* record, const RecordHeader& header) {
  return record_checksum(record, record + kHeaderBytes, header.payload_length) == header.record_check;
}

namespace {

// The bytes of a segment in memory, read as a file.
class MemoryFile final : public env::RandomAccessFile {
 public:
  MemoryFile(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  Result<size_t> read_at(uint64_t offset, void* dst, size_t n) const override {
    if (offset >= size_) return size_t{0};
    n = std::min<uint64_t>(n, size_ - offset);
    // A zero-length read may come with a null buffer (a record of no payload): memcpy's arguments must not be null
    // even for 0 bytes (found by make fuzz, ssd_segment).
    if (n > 0) std::memcpy(dst, data_ + offset, n);
    return n;
  }
  Result<uint64_t> size() const override { return size_; }
  const std::string& path() const override { return path_; }

 private:
  const uint8_t* data_;
  size_t size_;
  std::string path_ = "(memory)";
};

// The next offset >= from where a record magic starts, or size; reads the file in windows.
Result<uint64_t> next_magic_in_file(const env::RandomAccessFile& f, uint64_t size, uint64_t from,
                                    std::vector<uint8_t>& window) {
  constexpr size_t kWindow = 1 << 20;
  window.resize(kWindow);
  while (from + sizeof(kMagic) <= size) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(kWindow, size - from));
    KEEL_ASSIGN_OR_RETURN(size_t got, f.read_at(from, window.data(), want));
    if (got < sizeof(kMagic)) return size;
    const uint64_t in_window = next_magic(window.data(), got, 0);
    if (in_window < got) return from + in_window;
    if (got < want) return size;  // the file ends here now
    from += got - (sizeof(kMagic) - 1);  // a magic may straddle two windows
  }
  return size;
}

}  // namespace

bool verify_record(const uint8_t* header_bytes, std::span<const uint8_t> payload, const RecordHeader& header) {
  return payload.size() == header.payload_length &&
         record_checksum(header_bytes, payload.data(), payload.size()) == header.record_check;
}

Result<SegmentScan> scan_segment_file(const env::RandomAccessFile& f, uint64_t size, bool verify_payloads) {
  SegmentScan scan;
  uint8_t head[kHeaderBytes];
  std::vector<uint8_t> payload, window;
  // Headers are read through a read-ahead buffer: small records (many per buffer) cost no syscall each.
  constexpr size_t kAhead = 256 << 10;
  std::vector<uint8_t> ahead(kAhead);
  uint64_t ahead_at = 0;
  size_t ahead_len = 0;
  auto read_head = [&](uint64_t offset, size_t want) -> Result<size_t> {
    if (offset < ahead_at || offset + want > ahead_at + ahead_len) {
      KEEL_ASSIGN_OR_RETURN(ahead_len, f.read_at(offset, ahead.data(), static_cast<size_t>(std::min<uint64_t>(kAhead, size - offset))));
      ahead_at = offset;
    }
    const size_t got = static_cast<size_t>(std::min<uint64_t>(want, ahead_at + ahead_len - offset));
    std::memcpy(head, ahead.data() + (offset - ahead_at), got);
    return got;
  };
  uint64_t offset = 0;
  while (offset < size) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(kHeaderBytes, size - offset));
    KEEL_ASSIGN_OR_RETURN(size_t got, read_head(offset, want));
    if (got < want) size = offset + got;  // shrunk under the walk: it ends here now
    RecordHeader h;
    // parse_header reads at most min(available, kHeaderBytes) bytes: the ones just read.
    Problem problem = parse_header(head, static_cast<size_t>(size - offset), &h);
    if (problem == Problem::kNone && verify_payloads) {
      payload.resize(h.payload_length);
      KEEL_ASSIGN_OR_RETURN(size_t n, f.read_at(offset + kHeaderBytes, payload.data(), payload.size()));
      if (n < payload.size()) {
        size = offset + kHeaderBytes + n;
        problem = Problem::kTruncatedPayload;
      } else if (!verify_record(head, payload, h)) {
        // The header is sound, so its length can be trusted to find the next record.
        scan.problems.push_back(ScanProblem{offset, Problem::kPayloadChecksum});
        offset += kHeaderBytes + h.payload_length;
        continue;
      }
    }
    if (problem == Problem::kNone) {
      scan.records.push_back(ScannedRecord{offset, h});
      offset += kHeaderBytes + h.payload_length;
      continue;
    }
    if (problem == Problem::kOldFormat && h.payload_length <= size - offset - kHeaderBytes) {
      scan.problems.push_back(ScanProblem{offset, problem});
      offset += kHeaderBytes + h.payload_length;
      continue;
    }
    if (problem == Problem::kOldFormat) problem = Problem::kTruncatedPayload;
    scan.problems.push_back(ScanProblem{offset, problem});
    KEEL_ASSIGN_OR_RETURN(offset, next_magic_in_file(f, size, offset + 1, window));
  }
  return scan;
}

SegmentScan scan_segment(const uint8_t* data, size_t size, bool verify_payloads) {
  MemoryFile file(data, size);
  auto scan = scan_segment_file(file, size, verify_payloads);
  return scan.ok() ? std::move(*scan) : SegmentScan{};  // reads from memory cannot fail
}

std::string segment_name(uint64_t id) { return fmt::format("keel-{:010d}.seg", id); }

std::optional<uint64_t> parse_segment_name(const std::string& name) {
  // keel-NNNNNNNNNN.seg
  if (name.size() != 19 || !name.starts_with("keel-") || !name.ends_with(".seg")) return std::nullopt;
  uint64_t id = 0;
  for (size_t i = 5; i < 15; i++) {
    if (name[i] < '0' || name[i] > '9') return std::nullopt;
    id = id * 10 + static_cast<uint64_t>(name[i] - '0');
  }
  return id;
}

Result<std::vector<SegmentFile>> list_segments(env::Env* env, const std::string& dir) {
  KEEL_ASSIGN_OR_RETURN(std::vector<std::string> names, env->list_dir(dir));
  std::vector<SegmentFile> out;
  for (const std::string& name : names) {
    if (auto id = parse_segment_name(name)) out.push_back(SegmentFile{*id, name, env::join_path(dir, name)});
  }
  std::sort(out.begin(), out.end(), [](const SegmentFile& a, const SegmentFile& b) { return a.id < b.id; });
  return out;
}

namespace {

class Writer {
 public:
  void bytes(const void* p, size_t n) { out.append(static_cast<const char*>(p), n); }
  void u32(uint32_t v) { bytes(&v, 4); }
  void u64(uint64_t v) { bytes(&v, 8); }
  void hash(const Hash128& h) {
    u64(h.lo);
    u64(h.hi);
  }
  std::string out;
};

class Reader {
 public:
  explicit Reader(std::string_view s) : s_(s) {}
  bool u32(uint32_t* v) { return take(v, 4); }
  bool u64(uint64_t* v) { return take(v, 8); }
  bool hash(Hash128* h) { return u64(&h->lo) && u64(&h->hi); }
  size_t left() const { return s_.size() - pos_; }

 private:
  bool take(void* v, size_t n) {
    if (left() < n) return false;
    std::memcpy(v, s_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  std::string_view s_;
  size_t pos_ = 0;
};

constexpr size_t kCheckpointEntryBytes = 32;

}  // namespace

std::string encode_checkpoint(const Checkpoint& c) {
  Writer w;
  w.bytes(kCheckpointMagic, sizeof(kCheckpointMagic));
  w.u32(kCheckpointVersion);
  w.u32(0);
  w.hash(c.fingerprint);
  w.u64(c.segments.size());
  for (const CheckpointSegment& seg : c.segments) {
    w.u64(seg.id);
    w.u64(seg.bytes);
    w.u64(seg.entries.size());
    for (const CheckpointEntry& e : seg.entries) {
      w.hash(e.hash);
      w.u64(e.offset);
      w.u64(e.payload_length);
    }
  }
  w.u64(XXH3_64bits(w.out.data(), w.out.size()));
  return std::move(w.out);
}

Result<Checkpoint> decode_checkpoint(std::string_view bytes) {
  if (bytes.size() < sizeof(kCheckpointMagic) + 40 ||
      std::memcmp(bytes.data(), kCheckpointMagic, sizeof(kCheckpointMagic)) != 0)
    return corruption("{}: not an index checkpoint", kCheckpointName);
  uint64_t stored;
  std::memcpy(&stored, bytes.data() + bytes.size() - 8, 8);
  if (stored != XXH3_64bits(bytes.data(), bytes.size() - 8))
    return corruption("{}: checksum mismatch", kCheckpointName);
  Reader r(bytes.substr(sizeof(kCheckpointMagic), bytes.size() - sizeof(kCheckpointMagic) - 8));
  uint32_t version = 0, reserved = 0;
  uint64_t n_segments = 0;
  Checkpoint c;
  if (!r.u32(&version) || !r.u32(&reserved) || !r.hash(&c.fingerprint) || !r.u64(&n_segments))
    return corruption("{}: truncated", kCheckpointName);
  if (version != kCheckpointVersion)
    return corruption("{}: version {}, expected {}", kCheckpointName, version, kCheckpointVersion);
  for (uint64_t i = 0; i < n_segments; i++) {
    CheckpointSegment seg;
    uint64_t n_entries = 0;
    if (!r.u64(&seg.id) || !r.u64(&seg.bytes) || !r.u64(&n_entries) || n_entries > r.left() / kCheckpointEntryBytes)
      return corruption("{}: truncated", kCheckpointName);
    seg.entries.resize(n_entries);
    for (CheckpointEntry& e : seg.entries) {
      if (!r.hash(&e.hash) || !r.u64(&e.offset) || !r.u64(&e.payload_length))
        return corruption("{}: truncated", kCheckpointName);
    }
    c.segments.push_back(std::move(seg));
  }
  if (r.left() != 0) return corruption("{}: {} trailing bytes", kCheckpointName, r.left());
  return c;
}

}  // namespace keel::cache::ssd
