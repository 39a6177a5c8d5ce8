// A real crash: a child process writing to the SSD tier is killed with SIGKILL at random moments, round after
// round on one directory. Afterwards every record that verifies is served with exactly its bytes, nothing
// damaged is ever served, and every block the child saw flushed before it died is still there.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <random>
#include <set>
#include <thread>

#include "cache/ssd_inspect.h"
#include "cache/ssd_test_util.h"

namespace keel::cache {

namespace {

using namespace testing;

// Big enough that a kill often lands inside a write(2) or between a write and its fsync.
constexpr size_t kBig = 48 << 10;
constexpr uint64_t kRoundBlocks = 100'000;  // block ids of round r start at r * kRoundBlocks

SsdTierOptions crash_options(const std::string& dir) {
  SsdTierOptions o = tier_options(dir);
  o.max_payload_bytes = kBig;
  o.segment_bytes = 2ull << 20;
  o.max_bytes = 1ull << 30;  // nothing is evicted: every acknowledged block must still be there
  return o;
}

// The child: writes blocks of its round until killed, telling the parent (through `fd`) the last block id
// whose flush() returned with nothing dropped.
[[noreturn]] void write_until_killed(const std::string& dir, uint64_t first, int fd) {
  auto tier = SsdTier::open(env::Env::posix(), crash_options(dir));
  if (!tier.ok()) _exit(3);
  for (uint64_t i = first; i < first + kRoundBlocks; i++) {
    (*tier)->put(block(i), parent_of(i), kLayout.block_size, payload(i, kBig));
    if ((i - first) % 8 == 7) {
      (*tier)->flush();
      const SsdTierStats s = (*tier)->stats();
      if (s.dropped_queue_full + s.dropped_paused + s.dropped_failed == 0 && write(fd, &i, sizeof i) != sizeof i)
        _exit(4);
    }
  }
  _exit(0);
}

bool serves_big(SsdTier& tier, uint64_t i) {
  std::vector<uint8_t> out(kBig);
  size_t n = 0;
  return tier.get(block(i), out, &n) && n == kBig && out == payload(i, kBig);
}

}  // namespace

TEST(SsdCrash, KilledMidWriteAtRandomMomentsServesNothingDamagedAndKeepsWhatWasFlushed) {
  const std::string dir = temp_dir();
  std::mt19937 rng(20240607);
  std::vector<std::pair<uint64_t, uint64_t>> acked;  // per round: [first, last acknowledged] (empty if none)
  for (int round = 0; round < 24; round++) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    const uint64_t first = static_cast<uint64_t>(round) * kRoundBlocks;
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      write_until_killed(dir, first, fds[1]);
    }
    close(fds[1]);
    std::this_thread::sleep_for(std::chrono::microseconds(2'000 + rng() % 60'000));
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the child ended on its own, status " << status;
    uint64_t last = 0, id = 0;
    bool any = false;
    while (read(fds[0], &id, sizeof id) == sizeof id) {
      last = id;
      any = true;
    }
    close(fds[0]);
    if (any) acked.push_back({first, last});
  }

  // What `keel cache verify` reads: every record with its payload checked.
  auto report = ssd::inspect_dir(env::Env::posix(), dir, /*verify_payloads=*/true);
  ASSERT_TRUE(report.ok()) << report.status().message();
  std::set<uint64_t> sound;
  for (const auto& seg : report->segments) {
    auto data = env::Env::posix()->read_file(seg.file.path);
    ASSERT_TRUE(data.ok());
    const auto scan = ssd::scan_segment(reinterpret_cast<const uint8_t*>(data->data()), data->size(), true);
    for (const auto& r : scan.records) sound.insert(r.header.hash.hi);
  }
  ASSERT_FALSE(sound.empty());

  // A fresh tier (no checkpoint: every writer died) serves every sound record with its own bytes...
  auto tier = SsdTier::open(env::Env::posix(), crash_options(dir));
  ASSERT_TRUE(tier.ok());
  EXPECT_EQ((*tier)->stats().segments_from_checkpoint, 0u);
  EXPECT_EQ((*tier)->stats().blocks, sound.size());
  for (uint64_t i : sound) ASSERT_TRUE(serves_big(**tier, i)) << "block " << i;
  // ... everything acknowledged before each kill among them ...
  for (auto [first, last] : acked)
    for (uint64_t i = first; i <= last; i++) ASSERT_TRUE(sound.count(i)) << "acknowledged block " << i << " lost";
  // ... and the damage the kills left (torn tails) is counted, never served.
  EXPECT_EQ((*tier)->stats().corrupt_reads, 0u);
  // A kill cuts a write short; it never changes bytes already written: only torn tails, no damage.
  EXPECT_EQ(report->problems(), 0u);
  std::printf("[ crash    ] %zu rounds acknowledged, %zu sound records, %llu torn tails skipped\n", acked.size(),
              sound.size(), static_cast<unsigned long long>(report->torn_tails()));
}

}  // namespace keel::cache
