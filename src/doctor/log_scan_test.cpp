#include "doctor/log_scan.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include <unistd.h>

#include "doctor/test_util.h"

namespace keel::doctor {
namespace {

using testing::testdata;

std::set<std::string> ids(const LogScan& scan) {
  std::set<std::string> out;
  for (const auto& f : scan.findings) out.insert(f.id);
  return out;
}

LogScan scan_fixture(const std::string& name) {
  return scan_logs(env::Env::posix(), {testdata("logs/" + name)}, KnownIssues::builtin());
}

std::vector<std::string> fixtures_with_prefix(const std::string& prefix) {
  std::vector<std::string> out;
  for (const auto& entry : std::filesystem::directory_iterator(testdata("logs"))) {
    std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) == 0) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Fixture files are named <issue id>.<variant>.<ext>: each must produce that finding and no other.
class FixtureLog : public ::testing::TestWithParam<std::string> {};

TEST_P(FixtureLog, ProducesExactlyItsFinding) {
  const std::string name = GetParam();
  const std::string id = name.substr(0, name.find('.'));
  LogScan scan = scan_fixture(name);
  EXPECT_TRUE(scan.problems.empty()) << scan.problems.front();
  EXPECT_EQ(ids(scan), std::set<std::string>{id});
  ASSERT_EQ(scan.findings.size(), 1u);
  const Finding& f = scan.findings[0];
  EXPECT_EQ(f.severity, KnownIssues::builtin().find(id)->severity);
  ASSERT_FALSE(f.evidence.empty());
  // Evidence names the file and line it quotes.
  EXPECT_NE(f.evidence[0].find(name), std::string::npos) << f.evidence[0];
}

std::vector<std::string> issue_fixtures() {
  std::vector<std::string> out;
  for (const auto& entry : std::filesystem::directory_iterator(testdata("logs"))) {
    std::string name = entry.path().filename().string();
    if (name.rfind("clean.", 0) != 0 && name.rfind("broken.", 0) != 0) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string test_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string s = info.param;
  std::replace_if(s.begin(), s.end(), [](char c) { return !std::isalnum(static_cast<unsigned char>(c)); }, '_');
  return s;
}

INSTANTIATE_TEST_SUITE_P(Doctor, FixtureLog, ::testing::ValuesIn(issue_fixtures()), test_name);

TEST(LogScan, CleanLogsGiveNoFinding) {
  auto clean = fixtures_with_prefix("clean.");
  ASSERT_GE(clean.size(), 4u);
  for (const auto& name : clean) {
    LogScan scan = scan_fixture(name);
    EXPECT_TRUE(scan.findings.empty()) << name << ": " << scan.findings[0].id << " " << scan.findings[0].evidence[0];
    EXPECT_TRUE(scan.problems.empty()) << name;
  }
}

TEST(LogScan, DmesgEvidenceQuotesTheWholeLineWithItsPrefix) {
  LogScan scan = scan_fixture("nvidia-xid-79.dmesg.log");
  ASSERT_EQ(scan.findings.size(), 1u);
  const auto& evidence = scan.findings[0].evidence;
  ASSERT_EQ(evidence.size(), 2u);  // the Xid line and the "fallen off the bus" line
  EXPECT_NE(evidence[0].find(":8: [12345.678901] NVRM: Xid (PCI:0000:3b:00): 79, pid=2874, name=python3"),
            std::string::npos)
      << evidence[0];
  EXPECT_NE(evidence[1].find("GPU 0000:3b:00.0: GPU has fallen off the bus."), std::string::npos);
}

TEST(LogScan, JournalctlEvidenceKeepsTimestampAndHost) {
  LogScan scan = scan_fixture("nvidia-xid-119.journalctl.log");
  ASSERT_EQ(scan.findings.size(), 1u);
  ASSERT_EQ(scan.findings[0].evidence.size(), 2u);  // two GPUs, one finding
  EXPECT_NE(scan.findings[0].evidence[0].find("Nov 26 10:00:00 dgx-a100-07 kernel: NVRM: Xid (PCI:0000:ca:00): 119"),
            std::string::npos);
  EXPECT_NE(scan.findings[0].evidence[1].find("PCI:0000:cb:00"), std::string::npos);
}

TEST(LogScan, IpsPanicStringIsScannedLineByLine) {
  LogScan scan = scan_fixture("macos-iogpu-prepare-count-underflow.m3-ultra.ips");
  ASSERT_EQ(scan.findings.size(), 1u);
  EXPECT_EQ(scan.findings[0].severity, Severity::kCritical);
  ASSERT_EQ(scan.findings[0].evidence.size(), 1u);
  EXPECT_NE(scan.findings[0].evidence[0].find(
                "panicString:1: panic(cpu 23 caller 0xfffffe0047a1b2c8): \"completeMemory() prepare count "
                "underflow\" @IOGPUMemory.cpp:550"),
            std::string::npos)
      << scan.findings[0].evidence[0];
}

TEST(LogScan, DetectsKinds) {
  EXPECT_EQ(*detect_log_kind("x.log", "[1.0] hello\n"), LogKind::kText);
  EXPECT_EQ(*detect_log_kind("x.ips", "{\"bug_type\":\"210\"}\n{}"), LogKind::kIps);
  EXPECT_EQ(*detect_log_kind("x.panic", "{\"bug_type\":\"210\"}\n{}"), LogKind::kIps);
  EXPECT_EQ(*detect_log_kind("a.jsonl", "{\"purpose\":\"kv_pool\",\"bytes\":1}\n"), LogKind::kAllocLog);
  EXPECT_FALSE(detect_log_kind("x.ips", "panic(cpu 1)\n").ok());
  EXPECT_FALSE(detect_log_kind("x.log", std::string("\x7f" "ELF\0\0", 6)).ok());
}

TEST(LogScan, BinaryFileIsReportedNotScanned) {
  LogScan scan = scan_fixture("broken.binary.log");
  EXPECT_TRUE(scan.findings.empty());
  ASSERT_EQ(scan.problems.size(), 1u);
  EXPECT_NE(scan.problems[0].find("binary data, not a text log"), std::string::npos);
}

TEST(LogScan, IpsWithoutHeaderIsReported) {
  LogScan scan = scan_fixture("broken.noheader.ips");
  ASSERT_EQ(scan.problems.size(), 1u);
  EXPECT_NE(scan.problems[0].find("not an .ips report"), std::string::npos) << scan.problems[0];
}

TEST(LogScan, TruncatedIpsIsReportedAndScannedAsText) {
  LogScan scan = scan_fixture("broken.truncated.ips");
  ASSERT_EQ(scan.problems.size(), 1u);
  EXPECT_NE(scan.problems[0].find("not valid JSON"), std::string::npos) << scan.problems[0];
}

TEST(LogScan, IpsBodyNested100kLevelsDeepIsReportedAndScannedAsText) {
  const std::string path = "/tmp/keel_log_scan_deep_" + std::to_string(::getpid()) + ".ips";
  {
    std::ofstream f(path);
    f << R"({"bug_type":"309","os_version":"macOS 15.1"})" << "\n{\"x\":" << std::string(100000, '[')
      << std::string(100000, ']') << "}";
  }
  LogScan scan = scan_logs(env::Env::posix(), {path}, KnownIssues::builtin());
  std::remove(path.c_str());
  ASSERT_EQ(scan.problems.size(), 1u);
  EXPECT_NE(scan.problems[0].find(".ips body nests deeper than 256 levels"), std::string::npos) << scan.problems[0];
}

TEST(LogScan, JsonlThatIsNotAnAllocLogIsReported) {
  LogScan scan = scan_fixture("broken.notjson.jsonl");
  ASSERT_EQ(scan.problems.size(), 1u);
  EXPECT_NE(scan.problems[0].find("not a keel alloc log"), std::string::npos) << scan.problems[0];
}

TEST(LogScan, UnreadableFilesAreReportedAndTheOthersStillRead) {
  LogScan scan = scan_logs(env::Env::posix(),
                           {testdata("logs/does-not-exist.log"), testdata("logs"),
                            testdata("logs/nvidia-xid-48.dmesg.log"), testdata("logs/broken.binary.log"),
                            testdata("logs/linux-oom-killer.journalctl.log")},
                           KnownIssues::builtin());
  EXPECT_EQ(ids(scan), (std::set<std::string>{"nvidia-xid-48", "linux-oom-killer"}));
  ASSERT_EQ(scan.problems.size(), 3u);
  EXPECT_NE(scan.problems[0].find("does-not-exist.log"), std::string::npos) << scan.problems[0];
  EXPECT_NE(scan.problems[1].find("logs"), std::string::npos) << scan.problems[1];
  EXPECT_NE(scan.problems[2].find("broken.binary.log"), std::string::npos);
}

TEST(LogScan, FindingsFromSeveralFilesMerge) {
  LogScan scan = scan_logs(env::Env::posix(),
                           {testdata("logs/nvidia-xid-95.dmesg.log"), testdata("logs/nvidia-xid-95.syslog.log")},
                           KnownIssues::builtin());
  ASSERT_EQ(scan.findings.size(), 1u);
  EXPECT_EQ(scan.findings[0].evidence.size(), 2u);
}

TEST(LogScan, ManyMatchingLinesAreCountedNotAllQuoted) {
  std::string text;
  for (int i = 0; i < 40; ++i) {
    text += fmt::format("[{}.000000] NVRM: Xid (PCI:0000:3b:00): 31, pid={}, name=python3, Ch 00000008\n", 100 + i,
                        1000 + i);
  }
  LogScan scan;
  scan_log_contents("burst.log", text, KnownIssues::builtin(), scan);
  ASSERT_EQ(scan.findings.size(), 1u);
  ASSERT_EQ(scan.findings[0].evidence.size(), kMaxEvidencePerFile + 1);
  EXPECT_EQ(scan.findings[0].evidence.back(), "burst.log: ... and 35 more matching lines");
}

TEST(LogScan, CrlfLinesMatch) {
  LogScan scan;
  scan_log_contents("win.log", "Nov 26 10:00:00 h kernel: NVRM: Xid (PCI:0000:01:00): 92, High single-bit ECC error rate\r\n",
                    KnownIssues::builtin(), scan);
  ASSERT_EQ(scan.findings.size(), 1u);
  EXPECT_EQ(scan.findings[0].id, "nvidia-xid-92");
  EXPECT_EQ(scan.findings[0].evidence[0].back(), 'e');
}

TEST(LogScan, EmptyListScansNothing) {
  LogScan scan = scan_logs(env::Env::posix(), {}, KnownIssues::builtin());
  EXPECT_TRUE(scan.findings.empty());
  EXPECT_TRUE(scan.problems.empty());
}

}  // namespace
}  // namespace keel::doctor
