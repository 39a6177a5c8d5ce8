// The SSD tier's record reader: scan_segment (headers only, as a restart reads; and with payload checksums, as
// `keel cache verify` reads), parse_header and verify_payload over a segment's bytes. With the first byte odd
// the rest describes records that are encoded with their real checksums and then damaged (byte flips, a cut),
// so the walk is exercised past the checksums a random input never matches.
#include <cstring>
#include <vector>

#include "cache/ssd_format.h"
#include "fuzz.h"

using namespace keel::cache::ssd;
using keel::fuzz::take_uint;

namespace {

template <typename T>
void take_bytes(const uint8_t*& data, size_t& size, T* out) {
  uint8_t buf[sizeof(T)] = {};
  for (size_t i = 0; i < sizeof(T) && size > 0; i++, data++, size--) buf[i] = *data;
  std::memcpy(out, buf, sizeof(T));
}

// Records built from the input; `intact` is false once a damage step has run.
std::vector<uint8_t> build_segment(const uint8_t* data, size_t size, std::vector<RecordHeader>* built, bool* intact) {
  std::vector<uint8_t> seg;
  *intact = true;
  while (size > 0 && built->size() < 32) {
    RecordHeader h;
    take_bytes(data, size, &h.fingerprint);
    take_bytes(data, size, &h.hash);
    take_bytes(data, size, &h.parent);
    h.n_tokens = static_cast<uint32_t>(take_uint(data, size, 2));
    h.layout.num_layers = static_cast<uint32_t>(take_uint(data, size, 1));
    h.layout.num_kv_heads = static_cast<uint32_t>(take_uint(data, size, 1));
    h.layout.head_dim = static_cast<uint32_t>(take_uint(data, size, 1));
    h.layout.block_size = static_cast<uint32_t>(take_uint(data, size, 1));
    h.layout.kv_dtype = static_cast<keel::DType>(take_uint(data, size, 1) % (static_cast<int>(keel::DType::kBF16) + 1));
    std::vector<uint8_t> payload(take_uint(data, size, 1) * 4);
    for (uint8_t& b : payload) b = static_cast<uint8_t>(take_uint(data, size, 1));
    const size_t at = seg.size();
    seg.resize(at + kHeaderBytes + payload.size());
    encode_header(h, payload, seg.data() + at);
    std::copy(payload.begin(), payload.end(), seg.begin() + at + kHeaderBytes);
    h.payload_length = payload.size();
    built->push_back(h);
    const uint64_t damage = take_uint(data, size, 1);
    if (damage >= 0xf0) {  // flip a bit somewhere
      const uint64_t where = take_uint(data, size, 3) % seg.size();
      seg[where] ^= static_cast<uint8_t>(1u << (damage & 7));
      *intact = false;
    } else if (damage >= 0xe8) {  // cut the segment short, as a crash mid-write does
      seg.resize(take_uint(data, size, 3) % seg.size());
      *intact = false;
    }
  }
  return seg;
}

void check_scan(const std::vector<uint8_t>& seg, bool verify_payloads) {
  SegmentScan scan = scan_segment(seg.data(), seg.size(), verify_payloads);
  uint64_t next = 0;
  for (const ScannedRecord& r : scan.records) {
    KEEL_FUZZ_CHECK(r.offset >= next && r.offset + kHeaderBytes <= seg.size());
    KEEL_FUZZ_CHECK(r.header.payload_length <= seg.size() - r.offset - kHeaderBytes);
    next = r.offset + kHeaderBytes + r.header.payload_length;
    RecordHeader again;
    KEEL_FUZZ_CHECK(parse_header(seg.data() + r.offset, seg.size() - r.offset, &again) == Problem::kNone);
    const bool sound = verify_payload(seg.data() + r.offset, r.header);
    KEEL_FUZZ_CHECK(sound || !verify_payloads);
  }
  for (const ScanProblem& p : scan.problems) {
    KEEL_FUZZ_CHECK(p.offset < seg.size() && p.problem != Problem::kNone);
    (void)problem_name(p.problem);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool structured = data[0] & 1;
  data++, size--;
  std::vector<RecordHeader> built;
  bool intact = false;
  std::vector<uint8_t> seg = structured ? build_segment(data, size, &built, &intact)
                                        : std::vector<uint8_t>(data, data + size);
  check_scan(seg, /*verify_payloads=*/false);
  check_scan(seg, /*verify_payloads=*/true);
  if (structured && intact) {  // every record written must be read back, in order, as written
    SegmentScan scan = scan_segment(seg.data(), seg.size(), /*verify_payloads=*/true);
    KEEL_FUZZ_CHECK(scan.problems.empty() && scan.records.size() == built.size());
    for (size_t i = 0; i < built.size(); i++) {
      KEEL_FUZZ_CHECK(scan.records[i].header.hash == built[i].hash);
      KEEL_FUZZ_CHECK(scan.records[i].header.payload_length == built[i].payload_length);
      KEEL_FUZZ_CHECK(scan.records[i].header.layout == built[i].layout);
    }
  }
  return 0;
}
