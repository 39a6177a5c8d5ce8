#include "doctor/known_issues.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "doctor/log_scan.h"
#include "doctor/test_util.h"
#include "env/env.h"

namespace keel::doctor {
namespace {

using testing::testdata;

TEST(KnownIssues, BuiltinTableParses) {
  const auto& db = KnownIssues::builtin();
  EXPECT_GE(db.issues().size(), 17u);
}

TEST(KnownIssues, BuiltinTableIsTheRepositoryFile) {
  auto text = env::Env::posix()->read_file(std::string(KEEL_SOURCE_DIR) + "/data/known_issues.json");
  ASSERT_TRUE(text.ok()) << text.status().message();
  EXPECT_EQ(*text, std::string(builtin_known_issues_json()));
}

TEST(KnownIssues, CoversEveryEntryTheIssueAsksFor) {
  const auto& db = KnownIssues::builtin();
  for (const char* id : {"macos-iogpu-prepare-count-underflow", "nvidia-xid-13", "nvidia-xid-31", "nvidia-xid-43",
                         "nvidia-xid-48", "nvidia-xid-63", "nvidia-xid-64", "nvidia-xid-74", "nvidia-xid-79",
                         "nvidia-xid-92", "nvidia-xid-94", "nvidia-xid-95", "nvidia-xid-119", "nvidia-xid-120",
                         "linux-oom-killer", "cuda-driver-too-old"}) {
    const KnownIssue* issue = db.find(id);
    ASSERT_NE(issue, nullptr) << id;
    EXPECT_FALSE(issue->title.empty()) << id;
    EXPECT_FALSE(issue->explanation.empty()) << id;
    EXPECT_FALSE(issue->advice.empty()) << id;
    EXPECT_FALSE(issue->links.empty()) << id;
    EXPECT_FALSE(issue->signatures.empty()) << id;
  }
}

TEST(KnownIssues, MachineStoppingErrorsAreCritical) {
  const auto& db = KnownIssues::builtin();
  for (const char* id : {"macos-iogpu-prepare-count-underflow", "nvidia-xid-48", "nvidia-xid-79", "nvidia-xid-95",
                         "nvidia-xid-119", "nvidia-xid-120"}) {
    EXPECT_EQ(db.find(id)->severity, Severity::kCritical) << id;
  }
  EXPECT_EQ(db.find("nvidia-xid-43")->severity, Severity::kInfo);
  EXPECT_EQ(db.find("nvidia-xid-13")->severity, Severity::kWarning);
}

// Every entry with log signatures has at least two fixture logs (different prefixes, PCI addresses,
// pids, process names) that produce exactly that finding.
TEST(KnownIssues, EveryLogEntryHasSeveralFixtures) {
  std::map<std::string, int> fixtures;
  for (const auto& entry : std::filesystem::directory_iterator(testdata("logs"))) {
    std::string name = entry.path().filename().string();
    fixtures[name.substr(0, name.find('.'))]++;
  }
  for (const auto& issue : KnownIssues::builtin().issues()) {
    int wanted = issue.signatures.empty() ? 1 : 2;
    EXPECT_GE(fixtures[issue.id], wanted) << issue.id;
  }
}

TEST(KnownIssues, XidSignaturesDoNotMatchOtherXidNumbers) {
  const auto& db = KnownIssues::builtin();
  const std::string xid130 = "[  1.0] NVRM: Xid (PCI:0000:01:00): 130, pid=1, name=x";
  const std::string xid11 = "[  1.0] NVRM: Xid (PCI:0000:01:00): 11, pid=1, name=x";
  EXPECT_FALSE(db.find("nvidia-xid-13")->matches_line(xid130));
  EXPECT_FALSE(db.find("nvidia-xid-119")->matches_line(xid11));
  EXPECT_FALSE(db.find("nvidia-xid-13")->matches_line(xid11));
  EXPECT_TRUE(db.find("nvidia-xid-13")->matches_line("NVRM: Xid (0000:01:00): 13, 0005 00000000"));
}

TEST(KnownIssues, RejectsInvalidJson) {
  auto db = KnownIssues::parse("{not json", "bad.json");
  ASSERT_FALSE(db.ok());
  EXPECT_EQ(db.status().code(), Code::kCorruption);
  EXPECT_NE(db.status().message().find("bad.json"), std::string::npos);
}

TEST(KnownIssues, RejectsUnknownSeverityNamingTheEntry) {
  auto db = KnownIssues::parse(
      R"({"issues":[{"id":"x","severity":"fatal","title":"t","explanation":"e","advice":"a"}]})", "t.json");
  ASSERT_FALSE(db.ok());
  EXPECT_NE(db.status().message().find("(x)"), std::string::npos) << db.status().message();
  EXPECT_NE(db.status().message().find("fatal"), std::string::npos);
}

TEST(KnownIssues, RejectsARegexThatDoesNotCompile) {
  auto db = KnownIssues::parse(
      R"({"issues":[{"id":"x","severity":"info","title":"t","explanation":"e","advice":"a","signatures":["(unclosed"]}]})",
      "t.json");
  ASSERT_FALSE(db.ok());
  EXPECT_NE(db.status().message().find("(unclosed"), std::string::npos) << db.status().message();
}

TEST(KnownIssues, RejectsDuplicateIds) {
  auto db = KnownIssues::parse(
      R"({"issues":[{"id":"x","severity":"info","title":"t","explanation":"e","advice":"a"},
                    {"id":"x","severity":"info","title":"t","explanation":"e","advice":"a"}]})",
      "t.json");
  ASSERT_FALSE(db.ok());
  EXPECT_NE(db.status().message().find("duplicate id 'x'"), std::string::npos);
}

TEST(KnownIssues, RejectsUnknownPlatformKeys) {
  auto db = KnownIssues::parse(
      R"({"issues":[{"id":"x","severity":"info","title":"t","explanation":"e","advice":"a",
                     "platform":{"gpu":"h100"}}]})",
      "t.json");
  ASSERT_FALSE(db.ok());
  EXPECT_NE(db.status().message().find("gpu"), std::string::npos);
}

TEST(Versions, CompareNumerically) {
  EXPECT_LT(compare_versions("570.86.15", "580.65.06"), 0);
  EXPECT_GT(compare_versions("580.82.07", "580.65.06"), 0);
  EXPECT_EQ(compare_versions("26.0", "26"), 0);
  EXPECT_LT(compare_versions("15.7.4", "26.0"), 0);
  EXPECT_GT(compare_versions("26.10", "26.4.1"), 0);
  EXPECT_LT(compare_versions("6.8.0-45-generic", "6.10"), 0);
}

TEST(Versions, RangeIsHalfOpen) {
  VersionRange range{std::string("26.0"), std::string("27.0")};
  EXPECT_TRUE(range.contains("26.0"));
  EXPECT_TRUE(range.contains("26.4.1"));
  EXPECT_FALSE(range.contains("27.0"));
  EXPECT_FALSE(range.contains("15.7"));
  EXPECT_EQ(range.describe(), ">= 26.0, < 27.0");
}

}  // namespace
}  // namespace keel::doctor
