#include "doctor/alloc_log.h"

#include <gtest/gtest.h>

#include "doctor/test_util.h"

namespace keel::doctor {
namespace {

constexpr uint64_t GiB = 1ull << 30;

std::string line(const std::string& purpose, uint64_t bytes, uint64_t planned, uint64_t budget,
                 const std::string& model = "qwen3-8b") {
  return fmt::format(R"({{"time":"2025-11-26T10:00:00Z","purpose":"{}","bytes":{},"model":"{}","batch":8,)"
                     R"("context":4096,"dtype":"bf16","planned":{},"actual":{},"budget":{}}})",
                     purpose, bytes, model, planned, bytes, budget) + "\n";
}

LogScan scan(const std::string& text) {
  LogScan out;
  scan_log_contents("alloc.jsonl", text, KnownIssues::builtin(), out);
  return out;
}

TEST(AllocLog, AllocationsWithinPlanAndBudgetGiveNoFinding) {
  LogScan s = scan(line("weights", 16 * GiB, 16 * GiB, 64 * GiB) + line("kv_pool", 30 * GiB, 30 * GiB, 64 * GiB));
  EXPECT_TRUE(s.findings.empty());
  EXPECT_TRUE(s.problems.empty());
}

TEST(AllocLog, AllocationOverItsPlanIsFlaggedWithItsContext) {
  LogScan s = scan(line("activations", 3 * GiB, 2 * GiB, 100 * GiB));
  ASSERT_EQ(s.findings.size(), 1u);
  EXPECT_EQ(s.findings[0].id, "keel-alloc-over-plan");
  EXPECT_EQ(s.findings[0].evidence[0],
            "alloc.jsonl:1: activations 3.0 GiB (planned 2.0 GiB) model=qwen3-8b batch=8 context=4096 dtype=bf16 at "
            "2025-11-26T10:00:00Z");
}

TEST(AllocLog, RoundingWithinOnePercentIsNotOverPlan) {
  LogScan s = scan(line("kv_pool", 30 * GiB + 4096, 30 * GiB, 100 * GiB));
  EXPECT_TRUE(s.findings.empty());
}

TEST(AllocLog, MemoryInUseNearTheBudgetIsFlagged) {
  LogScan s = scan(line("weights", 40 * GiB, 40 * GiB, 70 * GiB) + line("kv_pool", 27 * GiB, 27 * GiB, 70 * GiB));
  ASSERT_EQ(s.findings.size(), 1u);
  EXPECT_EQ(s.findings[0].id, "keel-alloc-near-budget");
  ASSERT_EQ(s.findings[0].evidence.size(), 1u);
  EXPECT_NE(s.findings[0].evidence[0].find("alloc.jsonl:2: kv_pool"), std::string::npos);
  EXPECT_NE(s.findings[0].evidence[0].find("in use 67.0 GiB of budget 70.0 GiB (95.7%)"), std::string::npos)
      << s.findings[0].evidence[0];
}

TEST(AllocLog, ExplicitInUseWinsOverTheRunningSum) {
  LogScan s = scan(R"({"purpose":"kv_pool","bytes":1024,"planned":1024,"actual":1024,"budget":1000000,"in_use":990000})"
                   "\n");
  ASSERT_EQ(s.findings.size(), 1u);
  EXPECT_EQ(s.findings[0].id, "keel-alloc-near-budget");
}

TEST(AllocLog, GrowingSeriesForOnePurposeIsFlagged) {
  LogScan s = scan(line("activations", 1 * GiB, 1 * GiB, 500 * GiB) + line("weights", 16 * GiB, 16 * GiB, 500 * GiB) +
                   line("activations", 2 * GiB, 2 * GiB, 500 * GiB) + line("activations", 4 * GiB, 4 * GiB, 500 * GiB));
  ASSERT_EQ(s.findings.size(), 1u);
  EXPECT_EQ(s.findings[0].id, "keel-alloc-growing");
  EXPECT_EQ(s.findings[0].evidence[0],
            "alloc.jsonl:1-4: activations for model qwen3-8b grew 2 times in a row: 1.0 GiB -> 2.0 GiB -> 4.0 GiB");
}

TEST(AllocLog, SameSizeRepeatedOrDifferentModelsIsNotGrowing) {
  LogScan s = scan(line("kv_pool", 1 * GiB, 1 * GiB, 500 * GiB, "a") + line("kv_pool", 2 * GiB, 2 * GiB, 500 * GiB, "b") +
                   line("kv_pool", 4 * GiB, 4 * GiB, 500 * GiB, "c") + line("act", GiB, GiB, 500 * GiB) +
                   line("act", GiB, GiB, 500 * GiB) + line("act", GiB, GiB, 500 * GiB));
  EXPECT_TRUE(s.findings.empty());
}

TEST(AllocLog, SizesMayBeWrittenAsText) {
  LogScan s = scan(R"({"purpose":"activations","bytes":"3GiB","planned":"2GiB","actual":"3GiB"})" "\n");
  ASSERT_EQ(s.findings.size(), 1u);
  EXPECT_EQ(s.findings[0].id, "keel-alloc-over-plan");
}

TEST(AllocLog, OlderFieldNamesWhatAndEstimatedAreAccepted) {
  LogScan s = scan(R"({"what":"kv_pool","bytes":300,"estimated":200,"actual":300})" "\n");
  ASSERT_EQ(s.findings.size(), 1u);
  EXPECT_NE(s.findings[0].evidence[0].find("kv_pool 300 B (planned 200 B)"), std::string::npos)
      << s.findings[0].evidence[0];
}

TEST(AllocLog, BrokenLinesAreReportedAndTheRestRead) {
  LogScan s;
  auto text = env::Env::posix()->read_file(testing::testdata("logs/broken.partial.alloc.jsonl"));
  ASSERT_TRUE(text.ok());
  scan_log_contents("partial.jsonl", *text, KnownIssues::builtin(), s);
  EXPECT_TRUE(s.findings.empty());
  ASSERT_EQ(s.problems.size(), 1u);
  EXPECT_EQ(s.problems[0], "partial.jsonl: 1 line(s) are not JSON objects (first at line 3); read the rest");
}

}  // namespace
}  // namespace keel::doctor
