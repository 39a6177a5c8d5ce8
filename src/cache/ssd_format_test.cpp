#include "cache/ssd_format.h"

#include <gtest/gtest.h>

#include "cache/ssd_inspect.h"
#include "cache/ssd_tier.h"
#include "cache/ssd_test_util.h"

namespace keel::cache::ssd {
namespace {

using namespace keel::cache::testing;

SegmentScan scan(const std::string& bytes, bool verify = true) {
  return scan_segment(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), verify);
}

TEST(SsdFormat, HeaderRoundTrips) {
  std::string rec = encode_record(header_for(7), payload(7));
  ASSERT_EQ(rec.size(), kRecord);
  RecordHeader h;
  ASSERT_EQ(parse_header(reinterpret_cast<const uint8_t*>(rec.data()), rec.size(), &h), Problem::kNone);
  EXPECT_EQ(h.hash, block(7));
  EXPECT_EQ(h.parent, block(6));
  EXPECT_EQ(h.fingerprint, test_fingerprint());
  EXPECT_EQ(h.layout, kLayout);
  EXPECT_EQ(h.n_tokens, kLayout.block_size);
  EXPECT_EQ(h.payload_length, kPayload);
  EXPECT_TRUE(verify_payload(reinterpret_cast<const uint8_t*>(rec.data()), h));
}

TEST(SsdFormat, EverySingleBitFlipInARecordIsDetected) {
  const std::string rec = encode_record(header_for(1), payload(1));
  for (size_t byte = 0; byte < rec.size(); byte++) {
    for (int bit = 0; bit < 8; bit++) {
      std::string bad = rec;
      bad[byte] ^= static_cast<char>(1 << bit);
      SegmentScan s = scan(bad);
      ASSERT_TRUE(s.records.empty()) << "byte " << byte << " bit " << bit;
      ASSERT_EQ(s.problems.size(), 1u) << "byte " << byte << " bit " << bit;
      ASSERT_EQ(s.problems[0].offset, 0u);
    }
  }
}

TEST(SsdFormat, ScanResumesAtTheNextRecordAfterGarbage) {
  std::string bytes = encode_record(header_for(0), payload(0)) + "garbage, with a KVB in it" +
                      encode_record(header_for(1), payload(1));
  SegmentScan s = scan(bytes);
  ASSERT_EQ(s.records.size(), 2u);
  EXPECT_EQ(s.records[1].header.hash, block(1));
  ASSERT_EQ(s.problems.size(), 1u);
  EXPECT_EQ(s.problems[0].offset, kRecord);
  EXPECT_EQ(s.problems[0].problem, Problem::kBadMagic);
}

TEST(SsdFormat, TruncationAtEveryLengthIsOneProblemAtTheTail) {
  const std::string two = encode_record(header_for(0), payload(0)) + encode_record(header_for(1), payload(1));
  for (size_t len = kRecord + 1; len < two.size(); len++) {
    SegmentScan s = scan(two.substr(0, len));
    ASSERT_EQ(s.records.size(), 1u) << len;
    ASSERT_EQ(s.problems.size(), 1u) << len;
    EXPECT_EQ(s.problems[0].offset, kRecord);
    Problem expected = len - kRecord < kHeaderBytes ? Problem::kTruncatedHeader : Problem::kTruncatedPayload;
    EXPECT_EQ(s.problems[0].problem, expected) << len;
  }
}

TEST(SsdFormat, HeaderOnlyScanLeavesPayloadChecksToTheReader) {
  std::string rec = encode_record(header_for(0), payload(0));
  rec[kHeaderBytes + 1] ^= 1;
  EXPECT_EQ(scan(rec, /*verify=*/false).records.size(), 1u);
  SegmentScan verified = scan(rec, /*verify=*/true);
  EXPECT_TRUE(verified.records.empty());
  ASSERT_EQ(verified.problems.size(), 1u);
  EXPECT_EQ(verified.problems[0].problem, Problem::kPayloadChecksum);
}

TEST(SsdFormat, SegmentNamesRoundTripAndOthersAreNotKeels) {
  EXPECT_EQ(segment_name(42), "keel-0000000042.seg");
  EXPECT_EQ(parse_segment_name("keel-0000000042.seg"), 42u);
  EXPECT_FALSE(parse_segment_name("keel-000000004x.seg").has_value());
  EXPECT_FALSE(parse_segment_name("keel-0000000042.seg.tmp").has_value());
  EXPECT_FALSE(parse_segment_name("notes.txt").has_value());
}

TEST(SsdInspect, CountsRecordsProblemsAndFingerprintsAndClearsByFingerprint) {
  std::string dir = temp_dir();
  env::Env* env = env::Env::posix();
  std::string bad = encode_record(header_for(1), payload(1));
  bad[20] ^= 4;
  ASSERT_TRUE(env->write_file_atomic(env::join_path(dir, segment_name(3)),
                                     encode_record(header_for(0), payload(0)) + bad).ok());
  ASSERT_TRUE(env->write_file_atomic(env::join_path(dir, segment_name(9)),
                                     encode_record(header_for(2, other_fingerprint()), payload(2))).ok());
  auto r = inspect_dir(env, dir, true);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->segments.size(), 2u);
  EXPECT_EQ(r->segments[0].file.id, 3u);
  EXPECT_EQ(r->records(), 2u);
  EXPECT_EQ(r->problems(), 1u);
  EXPECT_EQ(r->bytes(), 3 * kRecord);
  EXPECT_EQ(r->by_fingerprint().size(), 2u);
  EXPECT_EQ(r->newest_fingerprint(), other_fingerprint());
  auto cleared = clear_dir(env, dir, test_fingerprint());
  ASSERT_TRUE(cleared.ok());
  EXPECT_EQ(cleared->segments_removed, 1u);
  EXPECT_EQ(cleared->segments_kept, 1u);
  EXPECT_TRUE(env->file_exists(env::join_path(dir, segment_name(3))));
  EXPECT_FALSE(env->file_exists(env::join_path(dir, segment_name(9))));
}

TEST(SsdInspect, ARecordCutShortAtTheEndIsATornTailNotDamage) {
  std::string dir = temp_dir();
  env::Env* env = env::Env::posix();
  const std::string one = encode_record(header_for(0), payload(0));
  const std::string two = encode_record(header_for(1), payload(1));
  // Cut inside the payload, and inside the header: both what a killed writer leaves.
  ASSERT_TRUE(env->write_file_atomic(env::join_path(dir, segment_name(1)), one + two.substr(0, two.size() - 3)).ok());
  ASSERT_TRUE(env->write_file_atomic(env::join_path(dir, segment_name(2)), one + two.substr(0, 50)).ok());
  auto r = inspect_dir(env, dir, true);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->records(), 2u);
  EXPECT_EQ(r->problems(), 0u);
  EXPECT_EQ(r->torn_tails(), 2u);
  ASSERT_TRUE(r->segments[0].torn_tail.has_value());
  EXPECT_EQ(r->segments[0].torn_tail->offset, kRecord);
  EXPECT_EQ(r->segments[0].torn_tail->problem, Problem::kTruncatedPayload);
  EXPECT_EQ(r->segments[1].torn_tail->problem, Problem::kTruncatedHeader);
}

TEST(SsdInspect, ATruncationFollowedByASoundRecordIsDamage) {
  std::string dir = temp_dir();
  env::Env* env = env::Env::posix();
  const std::string one = encode_record(header_for(0), payload(0));
  const std::string two = encode_record(header_for(1), payload(1));
  // A record whose first 40 bytes went missing mid-segment: the magic is found again at the next record.
  ASSERT_TRUE(env->write_file_atomic(env::join_path(dir, segment_name(1)), one.substr(0, 40) + two).ok());
  auto r = inspect_dir(env, dir, true);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->records(), 1u);
  EXPECT_EQ(r->problems(), 1u);
  EXPECT_EQ(r->torn_tails(), 0u);
}

// Format 2 changed what the block hash means (SHA-256 keys): a version-1 record is sound but keyed by the old
// hash. It is skipped and counted, never served, and is not damage (verify passes, the walk goes on after it).
TEST(SsdFormat, ARecordOfTheOldFormatIsSkippedAndCountedNotDamage) {
  RecordHeader old = header_for(1);
  old.version = kOldFormatVersion;
  const std::string bytes = encode_record(header_for(0), payload(0)) + encode_record(old, payload(1)) +
                            encode_record(header_for(2), payload(2));
  SegmentScan s = scan(bytes);
  ASSERT_EQ(s.records.size(), 2u);
  EXPECT_EQ(s.records[0].header.hash, block(0));
  EXPECT_EQ(s.records[1].header.hash, block(2));
  ASSERT_EQ(s.problems.size(), 1u);
  EXPECT_EQ(s.problems[0].problem, Problem::kOldFormat);
  EXPECT_EQ(s.problems[0].offset, kRecord);

  const std::string dir = temp_dir();
  ASSERT_TRUE(env::Env::posix()->write_file_atomic(env::join_path(dir, segment_name(1)), bytes).ok());
  auto report = inspect_dir(env::Env::posix(), dir, /*verify_payloads=*/true);
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->problems(), 0u);
  EXPECT_EQ(report->old_format(), 1u);
  EXPECT_EQ(report->records(), 2u);
  auto tier = SsdTier::open(env::Env::posix(), tier_options(dir));
  ASSERT_TRUE(tier.ok());
  const SsdTierStats st = (*tier)->stats();
  EXPECT_EQ(st.skipped_old_format, 1u);
  EXPECT_EQ(st.skipped_corrupt, 0u);
  EXPECT_EQ(st.blocks, 2u);
  EXPECT_FALSE((*tier)->contains(block(1)));
}

}  // namespace
}  // namespace keel::cache::ssd
