#include "cache/ssd_tier.h"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "cache/ssd_inspect.h"
#include "cache/ssd_test_util.h"
#include "env/fault_env.h"

namespace keel::cache {
namespace {

using namespace testing;
using env::Env;
using env::FaultEnv;

std::unique_ptr<SsdTier> open_tier(Env* env, const SsdTierOptions& o) {
  auto tier = SsdTier::open(env, o);
  EXPECT_TRUE(tier.ok()) << tier.status().message();
  return tier.ok() ? std::move(*tier) : nullptr;
}

uint64_t dir_bytes(const std::string& dir) {
  uint64_t total = 0;
  auto segs = ssd::list_segments(Env::posix(), dir);
  for (const auto& s : *segs) total += *Env::posix()->file_size(s.path);
  return total;
}

TEST(SsdTier, EveryBlockIsFoundAfterARestart) {
  std::string dir = temp_dir();
  {
    auto tier = open_tier(Env::posix(), tier_options(dir));
    put_blocks(*tier, 0, 300);
    for (uint64_t i = 0; i < 300; i++) ASSERT_TRUE(serves(*tier, i)) << i;
    EXPECT_EQ(tier->stats().written, 300u);
  }
  auto tier = open_tier(Env::posix(), tier_options(dir));
  SsdTierStats s = tier->stats();
  EXPECT_EQ(s.blocks, 300u);
  EXPECT_EQ(s.skipped_corrupt, 0u);
  EXPECT_EQ(s.bytes_on_disk, 300 * kRecord);
  for (uint64_t i = 0; i < 300; i++) ASSERT_TRUE(serves(*tier, i)) << i;
  EXPECT_FALSE(serves(*tier, 300));
  std::vector<BlockHash> prompt = {block(0), block(1), block(2), block(999), block(3)};
  EXPECT_EQ(tier->count_prefix(prompt), 3u);
  // New writes go to a new segment; the old ones are untouched.
  put_blocks(*tier, 300, 310);
  EXPECT_EQ(tier->stats().segments, 2u);
}

// Until the writer is done with it a block is served from its copy in the write queue (so a block sent down
// is found at once); it reaches the on-disk index only once written and synced.
TEST(SsdTier, ABlockIsServedFromTheQueueUntilItIsWrittenAndSynced) {
  FaultEnv env(Env::posix());
  auto tier = open_tier(&env, tier_options(temp_dir()));
  env.hold_appends();
  ASSERT_TRUE(tier->put(block(1), BlockHash{}, 4, payload(1)));
  while (env.blocked_appends() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_TRUE(tier->contains(block(1)));
  EXPECT_TRUE(serves(*tier, 1));
  EXPECT_EQ(tier->stats().queue_hits, 1u);
  EXPECT_EQ(tier->stats().written, 0u);
  EXPECT_EQ(tier->stats().blocks, 0u);
  env.release_appends();
  tier->flush();
  EXPECT_EQ(tier->stats().written, 1u);
  EXPECT_TRUE(serves(*tier, 1));
  EXPECT_EQ(tier->stats().queue_hits, 1u);  // from the disk this time
  EXPECT_GE(env.syncs(), 1);
}

TEST(SsdTier, DuplicatePutsWriteOnce) {
  auto tier = open_tier(Env::posix(), tier_options(temp_dir()));
  put_blocks(*tier, 0, 1);
  EXPECT_TRUE(tier->put(block(0), BlockHash{}, 4, payload(0)));
  tier->flush();
  EXPECT_EQ(tier->stats().written, 1u);
  EXPECT_EQ(tier->stats().duplicates, 1u);
  EXPECT_EQ(tier->stats().bytes_on_disk, kRecord);
}

// A write torn at each byte of a record, then a crash: on restart the earlier records are all served,
// the torn one never is, and the damage is counted once. Tearing after the last byte is a crash between
// write and publish: the record is whole, so the restart serves it.
TEST(SsdTier, TornWriteAtEveryByteOffsetSkipsOnlyThatRecord) {
  for (uint64_t tear = 0; tear <= kRecord; tear++) {
    SCOPED_TRACE("tear after " + std::to_string(tear) + " bytes of the record");
    std::string dir = temp_dir();
    {
      FaultEnv env(Env::posix());
      auto tier = open_tier(&env, tier_options(dir));
      put_blocks(*tier, 0, 3);
      env.tear_after_bytes(tear);
      if (tear == kRecord) env.fail_next_syncs(1);  // whole on disk, but the crash comes before publishing
      tier->put(block(3), parent_of(3), 4, payload(3));
      tier->flush();
      EXPECT_FALSE(tier->contains(block(3)));  // never acknowledged
      EXPECT_TRUE(env.crashed() || tear == kRecord);
    }
    auto tier = open_tier(Env::posix(), tier_options(dir));
    for (uint64_t i = 0; i < 3; i++) EXPECT_TRUE(serves(*tier, i)) << i;
    EXPECT_EQ(serves(*tier, 3), tear == kRecord);
    EXPECT_EQ(tier->stats().skipped_corrupt, (tear == 0 || tear == kRecord) ? 0u : 1u);
  }
}

TEST(SsdTier, BitFlipInAHeaderIsSkippedAndCounted) {
  std::string dir = temp_dir();
  {
    auto tier = open_tier(Env::posix(), tier_options(dir));
    put_blocks(*tier, 0, 3);
  }
  for (uint64_t byte : {0ull, 5ull, 9ull, 30ull, 57ull, 81ull, 90ull}) {
    SCOPED_TRACE("flip in header byte " + std::to_string(byte));
    FaultEnv env(Env::posix());
    env.flip_bit_on_read(ssd::segment_name(1), kRecord + byte, 3);
    SsdTierOptions o = tier_options(dir);
    o.checkpoint = false;  // read every header
    auto tier = open_tier(&env, o);
    EXPECT_EQ(tier->stats().skipped_corrupt, 1u);
    EXPECT_TRUE(serves(*tier, 0));
    EXPECT_FALSE(tier->contains(block(1)));
    EXPECT_FALSE(serves(*tier, 1));
    EXPECT_TRUE(serves(*tier, 2));
  }
}

TEST(SsdTier, ACleanRestartReadsTheCheckpointInsteadOfHeaders) {
  std::string dir = temp_dir();
  SsdTierOptions o = tier_options(dir);
  o.segment_bytes = 100 * kRecord;
  {
    auto tier = open_tier(Env::posix(), o);
    put_blocks(*tier, 0, 300);
  }
  const std::string ckpt = env::join_path(dir, ssd::kCheckpointName);
  ASSERT_TRUE(Env::posix()->file_exists(ckpt));
  auto tier = open_tier(Env::posix(), o);
  EXPECT_FALSE(Env::posix()->file_exists(ckpt));  // used once
  EXPECT_EQ(tier->stats().segments_from_checkpoint, 3u);
  EXPECT_EQ(tier->stats().blocks, 300u);
  for (uint64_t i = 0; i < 300; i++) ASSERT_TRUE(serves(*tier, i)) << i;
}

TEST(SsdTier, ADamagedCheckpointIsIgnoredAndTheSegmentsScanned) {
  std::string dir = temp_dir();
  {
    auto tier = open_tier(Env::posix(), tier_options(dir));
    put_blocks(*tier, 0, 50);
  }
  FaultEnv env(Env::posix());
  env.flip_bit_on_read(ssd::kCheckpointName, 60, 2);
  auto tier = open_tier(&env, tier_options(dir));
  EXPECT_EQ(tier->stats().segments_from_checkpoint, 0u);
  EXPECT_EQ(tier->stats().blocks, 50u);
  for (uint64_t i = 0; i < 50; i++) ASSERT_TRUE(serves(*tier, i)) << i;
}

TEST(SsdTier, AStaleCheckpointIsTrustedOnlyForSegmentsOfTheSameSize) {
  std::string dir = temp_dir();
  const std::string ckpt = env::join_path(dir, ssd::kCheckpointName);
  {
    auto tier = open_tier(Env::posix(), tier_options(dir));
    put_blocks(*tier, 0, 20);
  }
  std::string old_checkpoint = *Env::posix()->read_file(ckpt);
  {
    auto tier = open_tier(Env::posix(), tier_options(dir));
    put_blocks(*tier, 20, 40);  // a second segment the old checkpoint does not know
  }
  // Segment 1 grows behind the old checkpoint's back (as if appended by a process that then crashed).
  std::string seg1 = *Env::posix()->read_file(env::join_path(dir, ssd::segment_name(1)));
  seg1 += encode_record(header_for(99), payload(99));
  ASSERT_TRUE(Env::posix()->write_file_atomic(env::join_path(dir, ssd::segment_name(1)), seg1).ok());
  ASSERT_TRUE(Env::posix()->write_file_atomic(ckpt, old_checkpoint).ok());
  auto tier = open_tier(Env::posix(), tier_options(dir));
  EXPECT_EQ(tier->stats().segments_from_checkpoint, 0u);
  for (uint64_t i = 0; i < 40; i++) ASSERT_TRUE(serves(*tier, i)) << i;
  EXPECT_TRUE(serves(*tier, 99));
}

TEST(SsdTier, AHeaderFlippedAfterTheCheckpointIsStillNeverServed) {
  std::string dir = temp_dir();
  {
    auto tier = open_tier(Env::posix(), tier_options(dir));
    put_blocks(*tier, 0, 3);
  }
  FaultEnv env(Env::posix());
  env.flip_bit_on_read(ssd::segment_name(1), kRecord + 30, 1);
  auto tier = open_tier(&env, tier_options(dir));
  EXPECT_EQ(tier->stats().segments_from_checkpoint, 1u);
  EXPECT_FALSE(serves(*tier, 1));
  EXPECT_EQ(tier->stats().corrupt_reads, 1u);
  EXPECT_TRUE(serves(*tier, 0));
  EXPECT_TRUE(serves(*tier, 2));
}

TEST(SsdTier, BitFlipInAPayloadIsNeverServed) {
  std::string dir = temp_dir();
  {
    auto tier = open_tier(Env::posix(), tier_options(dir));
    put_blocks(*tier, 0, 3);
  }
  // A payload byte, and the record checksum itself (header bytes 96..103, outside the header checksum).
  for (uint64_t byte : {ssd::kHeaderBytes + 10, ssd::kHeaderBytes + kPayload - 1, uint64_t{100}}) {
    SCOPED_TRACE("flip in record byte " + std::to_string(byte));
    FaultEnv env(Env::posix());
    env.flip_bit_on_read(ssd::segment_name(1), kRecord + byte, 0);
    SsdTierOptions o = tier_options(dir);
    o.checkpoint = false;  // each round starts from the same files
    auto tier = open_tier(&env, o);
    EXPECT_TRUE(tier->contains(block(1)));  // the header is sound; the payload is checked on read
    EXPECT_FALSE(serves(*tier, 1));
    EXPECT_EQ(tier->stats().corrupt_reads, 1u);
    EXPECT_FALSE(tier->contains(block(1)));  // forgotten after failing
    EXPECT_TRUE(serves(*tier, 0));
    EXPECT_TRUE(serves(*tier, 2));
  }
}

TEST(SsdTier, RecordsOfAnotherVersionOrModelAreIgnored) {
  std::string dir = temp_dir();
  ssd::RecordHeader future = header_for(1);
  future.version = ssd::kFormatVersion + 1;
  std::string bytes = encode_record(header_for(0), payload(0)) + encode_record(future, payload(1)) +
                      encode_record(header_for(2, other_fingerprint()), payload(2)) +
                      encode_record(header_for(3), payload(3));
  ASSERT_TRUE(Env::posix()->write_file_atomic(env::join_path(dir, ssd::segment_name(1)), bytes).ok());
  auto tier = open_tier(Env::posix(), tier_options(dir));
  SsdTierStats s = tier->stats();
  EXPECT_EQ(s.blocks, 2u);
  EXPECT_EQ(s.skipped_corrupt, 1u);
  EXPECT_EQ(s.skipped_other_model, 1u);
  EXPECT_TRUE(serves(*tier, 0));
  EXPECT_FALSE(tier->contains(block(1)));
  EXPECT_FALSE(tier->contains(block(2)));
  EXPECT_TRUE(serves(*tier, 3));
}

TEST(SsdTier, AnotherModelFindsNothingInTheSameDirectory) {
  std::string dir = temp_dir();
  {
    auto tier = open_tier(Env::posix(), tier_options(dir));
    put_blocks(*tier, 0, 20);
  }
  SsdTierOptions other = tier_options(dir);
  other.fingerprint = other_fingerprint();
  auto tier = open_tier(Env::posix(), other);
  EXPECT_EQ(tier->stats().blocks, 0u);
  EXPECT_EQ(tier->stats().skipped_other_model, 20u);
  EXPECT_FALSE(tier->contains(block(0)));
}

TEST(SsdTier, DiskFullPausesWritingEvictsAndNeverFailsACaller) {
  std::string dir = temp_dir();
  FaultEnv env(Env::posix());
  SsdTierOptions o = tier_options(dir);
  o.segment_bytes = 10 * kRecord;
  o.pause_micros = 200'000;
  auto tier = open_tier(&env, o);
  put_blocks(*tier, 0, 50);  // 5 full segments
  ASSERT_EQ(tier->stats().segments, 5u);
  env.fail_after_bytes(kRecord / 2);
  put_blocks(*tier, 50, 60);
  SsdTierStats s = tier->stats();
  EXPECT_EQ(s.disk_full_events, 1u);
  EXPECT_TRUE(s.paused);
  EXPECT_GE(s.segments_evicted, 1u);
  // While paused, puts are dropped at once, never an error or a wait.
  EXPECT_FALSE(tier->put(block(70), parent_of(70), 4, payload(70)));
  EXPECT_GE(tier->stats().dropped_paused, 1u);
  // What was acknowledged and not evicted is intact.
  for (uint64_t i = 10; i < 50; i++) EXPECT_TRUE(serves(*tier, i)) << i;
  for (uint64_t i = 50; i < 60; i++) EXPECT_FALSE(tier->contains(block(i))) << i;
  // Space comes back: after the pause writing resumes.
  env.clear_faults();
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  put_blocks(*tier, 60, 65);
  for (uint64_t i = 60; i < 65; i++) EXPECT_TRUE(serves(*tier, i)) << i;
  tier.reset();
  auto reopened = open_tier(Env::posix(), o);
  for (uint64_t i = 10; i < 50; i++) EXPECT_TRUE(serves(*reopened, i)) << i;
  for (uint64_t i = 60; i < 65; i++) EXPECT_TRUE(serves(*reopened, i)) << i;
  EXPECT_LE(reopened->stats().skipped_corrupt, 1u);  // the half-written record, if it landed
}

TEST(SsdTier, QuotaExceededIsTreatedAsAFullDisk) {
  FaultEnv env(Env::posix());
  SsdTierOptions o = tier_options(temp_dir());
  auto tier = open_tier(&env, o);
  put_blocks(*tier, 0, 5);
  env.fail_nth_append(1, FaultEnv::Full::kQuota);
  put_blocks(*tier, 5, 6);
  EXPECT_EQ(tier->stats().disk_full_events, 1u);
  EXPECT_TRUE(tier->stats().paused);
}

TEST(SsdTier, FsyncFailureKeepsTheBatchInvisible) {
  FaultEnv env(Env::posix());
  SsdTierOptions o = tier_options(temp_dir());
  o.pause_micros = 1000;
  auto tier = open_tier(&env, o);
  put_blocks(*tier, 0, 3);
  env.fail_next_syncs(1);
  put_blocks(*tier, 3, 6);
  for (uint64_t i = 3; i < 6; i++) EXPECT_FALSE(tier->contains(block(i)));
  EXPECT_EQ(tier->stats().write_errors, 1u);
  EXPECT_EQ(tier->stats().disk_full_events, 0u);
  for (uint64_t i = 0; i < 3; i++) EXPECT_TRUE(serves(*tier, i));
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  put_blocks(*tier, 6, 8);
  EXPECT_TRUE(serves(*tier, 7));
}

TEST(SsdTier, CapOnWhatKeelWroteHoldsUnderAWorkloadManyTimesItsSize) {
  std::string dir = temp_dir();
  SsdTierOptions o = tier_options(dir);
  o.max_bytes = 50 * kRecord;
  auto tier = open_tier(Env::posix(), o);
  for (uint64_t i = 0; i < 1000; i += 16) {
    put_blocks(*tier, i, i + 16);
    ASSERT_LE(tier->stats().bytes_on_disk, o.max_bytes);
    ASSERT_LE(dir_bytes(dir), o.max_bytes);
  }
  SsdTierStats s = tier->stats();
  EXPECT_EQ(s.written, 1008u);
  EXPECT_GT(s.segments_evicted, 0u);
  EXPECT_TRUE(serves(*tier, 1007));
  EXPECT_FALSE(tier->contains(block(0)));
  EXPECT_GT(s.blocks, 25u);  // eviction is by segment: most of the cap stays in use
  tier.reset();
  auto reopened = open_tier(Env::posix(), o);
  EXPECT_LE(reopened->stats().bytes_on_disk, o.max_bytes);
  EXPECT_EQ(reopened->stats().blocks, s.blocks);
}

TEST(SsdTier, SlowDiskDropsWritesInsteadOfBlockingCallers) {
  FaultEnv env(Env::posix());
  SsdTierOptions o = tier_options(temp_dir());
  o.queue_blocks = 8;
  auto tier = open_tier(&env, o);
  env.hold_appends();
  int accepted = 0;
  auto slowest = std::chrono::nanoseconds(0);
  for (uint64_t i = 0; i < 200; i++) {
    auto t0 = std::chrono::steady_clock::now();
    accepted += tier->put(block(i), parent_of(i), 4, payload(i));
    slowest = std::max(slowest, std::chrono::steady_clock::now() - t0);
  }
  EXPECT_LE(accepted, 8);
  EXPECT_GE(tier->stats().dropped_queue_full, 192u);
  EXPECT_LT(slowest, std::chrono::milliseconds(50));
  env.release_appends();
  tier->flush();
  EXPECT_EQ(tier->stats().written, static_cast<uint64_t>(accepted));
}

TEST(SsdTier, ReadersDuringWritesAndEvictionOnlyEverSeeCorrectBytes) {
  SsdTierOptions o = tier_options(temp_dir());
  o.max_bytes = 40 * kRecord;  // constant eviction
  auto tier = open_tier(Env::posix(), o);
  std::atomic<bool> done{false};
  std::atomic<uint64_t> hits{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; t++) {
    readers.emplace_back([&, t] {
      std::vector<uint8_t> out(kPayload);
      for (uint64_t k = 0; !done; k++) {
        uint64_t i = (k * 7 + t) % 600;
        size_t n = 0;
        if (tier->get(block(i), out, &n)) {
          ASSERT_EQ(out, payload(i)) << i;
          hits++;
        }
      }
    });
  }
  put_blocks(*tier, 0, 600);
  done = true;
  for (auto& r : readers) r.join();
  EXPECT_GT(hits.load(), 0u);
  EXPECT_EQ(tier->stats().corrupt_reads, 0u);
  EXPECT_LE(tier->stats().bytes_on_disk, o.max_bytes);
}

TEST(SsdTier, ASecondOwnerOfTheDirectoryIsRefusedNamingTheFirstsPid) {
  const std::string dir = temp_dir();
  auto first = open_tier(Env::posix(), tier_options(dir));
  auto second = SsdTier::open(Env::posix(), tier_options(dir));
  ASSERT_FALSE(second.ok());
  const std::string& m = second.status().message();
  EXPECT_NE(m.find(dir), std::string::npos) << m;
  EXPECT_NE(m.find("held by process " + std::to_string(::getpid())), std::string::npos) << m;
  // keel cache clear is refused too, and removes nothing.
  put_blocks(*first, 0, 3);
  auto cleared = ssd::clear_dir(Env::posix(), dir, std::nullopt);
  ASSERT_FALSE(cleared.ok());
  EXPECT_NE(cleared.status().message().find("held by process"), std::string::npos);
  EXPECT_TRUE(serves(*first, 2));
  // The first owner gone, the directory is free again.
  first.reset();
  EXPECT_TRUE(SsdTier::open(Env::posix(), tier_options(dir)).ok());
  EXPECT_TRUE(ssd::clear_dir(Env::posix(), dir, std::nullopt).ok());
}

TEST(SsdTier, FilesArePrivateAndTheDirectoryIs0700) {
  const std::string dir = env::join_path(temp_dir(), "new/cache");
  {
    auto tier = open_tier(Env::posix(), tier_options(dir));
    put_blocks(*tier, 0, 3);
  }  // writes the checkpoint
  auto mode = [](const std::string& path) {
    struct stat st {};
    EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
    return st.st_mode & 0777;
  };
  EXPECT_EQ(mode(dir), 0700u);
  EXPECT_EQ(mode(env::join_path(dir, ssd::segment_name(1))), 0600u);
  EXPECT_EQ(mode(env::join_path(dir, ssd::kCheckpointName)), 0600u);
  EXPECT_EQ(mode(env::join_path(dir, ssd::kLockName)), 0600u);
}

// Segments are read with pread: one truncated under a running tier (by someone else; keel never shrinks a
// segment) reads short. That is a counted miss and the block leaves the index, where a map would SIGBUS.
TEST(SsdTier, ASegmentTruncatedUnderTheTierIsACountedMissNotACrash) {
  const std::string dir = temp_dir();
  { put_blocks(*open_tier(Env::posix(), tier_options(dir)), 0, 10); }
  auto tier = open_tier(Env::posix(), tier_options(dir));
  ASSERT_TRUE(serves(*tier, 0));  // the segment is open now
  ASSERT_EQ(::truncate(env::join_path(dir, ssd::segment_name(1)).c_str(), 5 * kRecord + 10), 0);
  for (uint64_t i = 0; i < 5; i++) EXPECT_TRUE(serves(*tier, i)) << i;
  const uint64_t misses = tier->stats().misses;
  for (uint64_t i = 5; i < 10; i++) EXPECT_FALSE(serves(*tier, i)) << i;
  SsdTierStats s = tier->stats();
  EXPECT_EQ(s.truncated_reads, 5u);
  EXPECT_EQ(s.misses, misses + 5);
  EXPECT_EQ(s.corrupt_reads, 0u);
  EXPECT_FALSE(tier->contains(block(7)));  // forgotten: the next prompt computes it
  // Emptied entirely: still no crash.
  ASSERT_EQ(::truncate(env::join_path(dir, ssd::segment_name(1)).c_str(), 0), 0);
  EXPECT_FALSE(serves(*tier, 0));
  EXPECT_EQ(tier->stats().truncated_reads, 6u);
}

TEST(SsdTier, OversizedBlockIsDroppedNotWritten) {
  auto tier = open_tier(Env::posix(), tier_options(temp_dir()));
  EXPECT_FALSE(tier->put(block(0), BlockHash{}, 4, payload(0, kPayload + 1)));
  EXPECT_EQ(tier->stats().dropped_too_large, 1u);
}

TEST(SsdTier, Rebuilds100kBlocksQuickly) {
  std::string dir = temp_dir();
  constexpr uint64_t kBlocks = 100000;
  constexpr uint64_t kPerSegment = 10000;
  for (uint64_t seg = 0; seg < kBlocks / kPerSegment; seg++) {
    std::string bytes;
    bytes.reserve(kPerSegment * kRecord);
    for (uint64_t i = seg * kPerSegment; i < (seg + 1) * kPerSegment; i++) bytes += encode_record(header_for(i), payload(i));
    ASSERT_TRUE(Env::posix()->write_file_atomic(env::join_path(dir, ssd::segment_name(seg + 1)), bytes).ok());
  }
  for (const char* how : {"scanning headers", "from the checkpoint"}) {
    auto t0 = std::chrono::steady_clock::now();
    auto tier = open_tier(Env::posix(), tier_options(dir));
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(tier->stats().blocks, kBlocks);
    EXPECT_EQ(tier->stats().skipped_corrupt, 0u);
    EXPECT_EQ(tier->stats().segments_from_checkpoint, std::string(how) == "scanning headers" ? 0u : 10u);
    EXPECT_TRUE(serves(*tier, 0));
    EXPECT_TRUE(serves(*tier, kBlocks - 1));
    std::printf("[ rebuild  ] %llu blocks in %llu segments, %s: %.1f ms (%.2f us/block)\n",
                static_cast<unsigned long long>(kBlocks), static_cast<unsigned long long>(kBlocks / kPerSegment), how,
                ms, ms * 1000 / kBlocks);
    EXPECT_LT(ms, 5000);
  }
}

}  // namespace
}  // namespace keel::cache
