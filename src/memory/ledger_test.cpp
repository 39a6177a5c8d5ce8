#include "memory/ledger.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "memory/test_env.h"

namespace keel::memory {
namespace {

constexpr uint64_t MiB = 1ull << 20;

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(Ledger, ReleaseWithoutAcquireIsReportedWithHistory) {
  testing::MemEnv env;
  Ledger ledger(env.clock());
  ledger.set_step(3);
  ASSERT_TRUE(ledger.acquire("kv_pool#0", "kv_pool", 256 * MiB, "CpuBackend::alloc_kv").ok());
  env.clock_micros += 1500000;
  ledger.set_step(7);
  ASSERT_TRUE(ledger.release("kv_pool#0", "engine shutdown").ok());
  env.clock_micros += 1000;
  ledger.set_step(8);
  Status s = ledger.release("kv_pool#0", "scheduler");

  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::kInternal);
  EXPECT_EQ(s.message(),
            "ledger: release of kv_pool#0 by scheduler without a matching acquire (release count would underflow)\n"
            "buffer kv_pool#0 (kv_pool, 256.0 MiB): 1 acquire, 1 release\n"
            "  acquire step 3 at 2025-11-26T10:00:00.000Z by CpuBackend::alloc_kv\n"
            "  release step 7 at 2025-11-26T10:00:01.500Z by engine shutdown\n"
            "  release (refused: no holder) step 8 at 2025-11-26T10:00:01.501Z by scheduler");
  // The refused release changed no count.
  EXPECT_EQ(ledger.holders("kv_pool#0"), 0);
  EXPECT_TRUE(ledger.check_balanced().ok());
}

TEST(Ledger, ReleaseOfABufferNeverAcquiredNamesIt) {
  testing::MemEnv env;
  Ledger ledger(env.clock());
  Status s = ledger.release("weights#lm_head", "model");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::kInternal);
  EXPECT_TRUE(contains(s.message(), "weights#lm_head")) << s.message();
  EXPECT_TRUE(contains(s.message(), "never acquired")) << s.message();
}

TEST(Ledger, UnbalancedBuffersAreListedAtShutdown) {
  testing::MemEnv env;
  Ledger ledger(env.clock());
  ASSERT_TRUE(ledger.acquire("weights", "weights", 100 * MiB, "loader").ok());
  ASSERT_TRUE(ledger.acquire("activations", "activations", 10 * MiB, "model").ok());
  ASSERT_TRUE(ledger.acquire("kv_pool", "kv_pool", 50 * MiB, "backend").ok());
  ASSERT_TRUE(ledger.acquire("kv_pool", "kv_pool", 50 * MiB, "prefix cache").ok());
  ASSERT_TRUE(ledger.release("weights", "loader").ok());
  ASSERT_TRUE(ledger.release("kv_pool", "backend").ok());

  Status s = ledger.check_balanced();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::kInternal);
  EXPECT_TRUE(contains(s.message(), "ledger: 2 buffers are not balanced at shutdown")) << s.message();
  EXPECT_TRUE(contains(s.message(), "buffer activations (activations, 10.0 MiB): 1 acquire, 0 releases"));
  EXPECT_TRUE(contains(s.message(), "buffer kv_pool (kv_pool, 50.0 MiB): 2 acquires, 1 release"));
  EXPECT_FALSE(contains(s.message(), "buffer weights"));

  ASSERT_TRUE(ledger.release("activations", "model").ok());
  ASSERT_TRUE(ledger.release("kv_pool", "prefix cache").ok());
  EXPECT_TRUE(ledger.check_balanced().ok());
  EXPECT_EQ(ledger.bytes_reserved(), 0u);
}

TEST(Ledger, CountsAllocationsBytesAndThoseAfterWarmUp) {
  testing::MemEnv env;
  Ledger ledger(env.clock());
  ASSERT_TRUE(ledger.acquire("a", "weights", 100, "t").ok());
  ASSERT_TRUE(ledger.acquire("b", "kv_pool", 20, "t").ok());
  ASSERT_TRUE(ledger.acquire("b", "kv_pool", 20, "t").ok());  // a second holder is not an allocation
  EXPECT_EQ(ledger.allocations_total(), 2u);
  EXPECT_EQ(ledger.bytes_reserved(), 120u);
  ledger.mark_warm();
  EXPECT_EQ(ledger.allocations_after_warm(), 0u);
  ASSERT_TRUE(ledger.release("b", "t").ok());
  ASSERT_TRUE(ledger.acquire("b", "kv_pool", 20, "t").ok());  // still held: no allocation
  EXPECT_EQ(ledger.allocations_after_warm(), 0u);
  ASSERT_TRUE(ledger.release("a", "t").ok());
  EXPECT_EQ(ledger.bytes_reserved(), 20u);
  ASSERT_TRUE(ledger.acquire("a", "weights", 100, "t").ok());  // freed then taken again: an allocation
  EXPECT_EQ(ledger.allocations_after_warm(), 1u);
  EXPECT_EQ(ledger.allocations_total(), 3u);
  EXPECT_EQ(ledger.bytes_reserved(), 120u);
}

TEST(Ledger, AcquireOfAHeldBufferUnderAnotherSizeFails) {
  testing::MemEnv env;
  Ledger ledger(env.clock());
  ASSERT_TRUE(ledger.acquire("x", "activations", 64, "a").ok());
  Status s = ledger.acquire("x", "activations", 128, "b");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::kInternal);
  EXPECT_TRUE(contains(s.message(), "while it is held as activations (64 B)")) << s.message();
  EXPECT_EQ(ledger.holders("x"), 1);
}

TEST(Ledger, HistoryKeepsTheLastEventsAndCountsTheRest) {
  testing::MemEnv env;
  Ledger ledger(env.clock());
  for (size_t i = 0; i < Ledger::kMaxHistory + 5; ++i) ASSERT_TRUE(ledger.acquire("x", "p", 1, "t").ok());
  std::string h = ledger.history("x");
  EXPECT_TRUE(contains(h, "... 5 earlier events")) << h;
  EXPECT_EQ(ledger.holders("x"), static_cast<int64_t>(Ledger::kMaxHistory + 5));
}

TEST(Ledger, ConcurrentAcquireAndReleaseBalance) {
  testing::MemEnv env;
  Ledger ledger(env.clock());
  constexpr int kThreads = 8, kRounds = 2000;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRounds; ++i) {
        // Every thread shares "shared" and owns one buffer of its own.
        std::string own = "own#" + std::to_string(t);
        if (!ledger.acquire("shared", "kv_pool", 4096, "t").ok()) ++failures;
        if (!ledger.acquire(own, "activations", 100, "t").ok()) ++failures;
        if (!ledger.release(own, "t").ok()) ++failures;
        if (!ledger.release("shared", "t").ok()) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_TRUE(ledger.check_balanced().ok());
  EXPECT_EQ(ledger.bytes_reserved(), 0u);
  EXPECT_EQ(ledger.holders("shared"), 0);
  // Each own buffer is freed and taken again every round.
  EXPECT_GE(ledger.allocations_total(), static_cast<uint64_t>(kThreads * kRounds));
}

TEST(Ledger, TimesAreIso8601Utc) {
  EXPECT_EQ(iso8601_utc(1764151200123456), "2025-11-26T10:00:00.123Z");
  EXPECT_EQ(iso8601_utc(0), "1970-01-01T00:00:00.000Z");
  // A date (after 2023-11-14), not the seconds since boot that a steady clock gives.
  EXPECT_GT(system_wall_micros(), 1700000000000000ull);
}

}  // namespace
}  // namespace keel::memory
