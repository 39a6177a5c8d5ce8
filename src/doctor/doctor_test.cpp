#include "doctor/doctor.h"

#include <gtest/gtest.h>

#include "doctor/startup.h"
#include "doctor/test_util.h"

namespace keel::doctor {
namespace {

using testing::FakeProbeSource;
using testing::testdata;

DoctorReport doctor_with_logs(const std::vector<std::string>& logs, FakeProbeSource* source = nullptr) {
  FakeProbeSource fallback(testdata("platform/linux-bare"));
  DoctorOptions options;
  for (const auto& log : logs) options.logs.push_back(testdata("logs/" + log));
  return run_doctor(options, env::Env::posix(), source ? *source : fallback);
}

TEST(Doctor, CleanMachineAndLogsExitZeroWithNoFindings) {
  DoctorReport report = doctor_with_logs({"clean.dmesg.log", "clean.journalctl.log", "clean.alloc.jsonl"});
  EXPECT_TRUE(report.findings.empty());
  EXPECT_EQ(doctor_exit_code(report), 0);
  EXPECT_NE(report_to_text(report).find("Findings\n  none\n"), std::string::npos);
}

TEST(Doctor, CriticalFindingExitsThree) {
  EXPECT_EQ(doctor_exit_code(doctor_with_logs({"nvidia-xid-79.journalctl.log"})), 3);
  EXPECT_EQ(doctor_exit_code(doctor_with_logs({"macos-iogpu-prepare-count-underflow.m4-mini.panic"})), 3);
}

TEST(Doctor, WarningsAloneExitZero) {
  EXPECT_EQ(doctor_exit_code(doctor_with_logs({"nvidia-xid-13.dmesg.log", "linux-oom-killer.dmesg.log"})), 0);
}

TEST(Doctor, UnreadableLogExitsOneUnlessSomethingIsCritical) {
  EXPECT_EQ(doctor_exit_code(doctor_with_logs({"missing.log", "nvidia-xid-13.dmesg.log"})), 1);
  EXPECT_EQ(doctor_exit_code(doctor_with_logs({"missing.log", "nvidia-xid-95.dmesg.log"})), 3);
}

TEST(Doctor, JsonHasExactlyPlatformAndFindings) {
  DoctorReport report = doctor_with_logs({"nvidia-xid-13.dmesg.log", "nvidia-xid-48.dmesg.log"});
  nlohmann::ordered_json j = report_to_json(report);
  ASSERT_TRUE(j.is_object());
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j.begin().key(), "platform");  // the documented order
  EXPECT_TRUE(j["platform"].is_object());
  ASSERT_TRUE(j["findings"].is_array());
  ASSERT_EQ(j["findings"].size(), 2u);
  for (const auto& f : j["findings"]) {
    ASSERT_EQ(f.size(), 5u);
    std::vector<std::string> keys;
    for (auto it = f.begin(); it != f.end(); ++it) keys.push_back(it.key());
    EXPECT_EQ(keys, (std::vector<std::string>{"id", "severity", "title", "evidence", "advice"}));
    for (const char* key : {"id", "severity", "title", "advice"}) EXPECT_TRUE(f[key].is_string()) << key;
    ASSERT_TRUE(f["evidence"].is_array());
    EXPECT_FALSE(f["evidence"].empty());
  }
  // Most severe first.
  EXPECT_EQ(j["findings"][0]["id"], "nvidia-xid-48");
  EXPECT_EQ(j["findings"][0]["severity"], "critical");
  EXPECT_EQ(j["findings"][1]["id"], "nvidia-xid-13");
  EXPECT_EQ(j["findings"][1]["severity"], "warning");
  EXPECT_NE(j["findings"][0]["evidence"][0].get<std::string>().find("NVRM: Xid (PCI:0000:3b:00): 48"),
            std::string::npos);
}

TEST(Doctor, JsonOfCleanRunHasEmptyFindings) {
  nlohmann::ordered_json j = report_to_json(doctor_with_logs({}));
  EXPECT_EQ(j["findings"], nlohmann::ordered_json::array());
}

TEST(Doctor, TextReportShowsSeverityEvidenceAndAdvice) {
  std::string text = report_to_text(doctor_with_logs({"nvidia-xid-119.dmesg.log", "broken.binary.log"}));
  EXPECT_NE(text.find("[critical] nvidia-xid-119: NVIDIA Xid 119: GSP RPC timeout"), std::string::npos) << text;
  EXPECT_NE(text.find("    > "), std::string::npos);
  EXPECT_NE(text.find("    advice: Reset the GPU"), std::string::npos);
  EXPECT_NE(text.find("binary data, not a text log"), std::string::npos);
}

TEST(Startup, OldDriverOnLinuxWarns) {
  FakeProbeSource source(testdata("platform/linux-h100"));  // /proc says 535.183.01, no NVML
  Platform p = probe_platform(source, "");
  auto findings = startup_findings(p);
  ASSERT_EQ(findings.size(), 1u);
  EXPECT_EQ(findings[0].id, "cuda-driver-too-old");
  EXPECT_EQ(findings[0].severity, Severity::kWarning);
  EXPECT_EQ(findings[0].evidence[0], "this machine: os linux, NVIDIA driver 535.183.01 (< 580.65.06)");
  EXPECT_FALSE(has_critical(findings));
}

TEST(Startup, CurrentDriverAndNoDriverDoNotWarn) {
  Platform p;
  p.os = "linux";
  p.nvidia.driver_version = "580.82.07";
  EXPECT_TRUE(startup_findings(p).empty());
  p.nvidia.driver_version = kUnknown;
  EXPECT_TRUE(startup_findings(p).empty());
}

TEST(Startup, AffectedMacOSWarnsAtPlatformSeverity) {
  Platform p;
  p.os = "macos";
  p.macos_product_version = "26.4.1";
  auto findings = startup_findings(p);
  ASSERT_EQ(findings.size(), 1u);
  EXPECT_EQ(findings[0].id, "macos-iogpu-prepare-count-underflow");
  EXPECT_EQ(findings[0].severity, Severity::kWarning);  // critical only with a panic in the logs
  p.macos_product_version = "14.6";
  EXPECT_TRUE(startup_findings(p).empty());
}

TEST(Startup, PlatformAndLogFindingsMergeAtTheHigherSeverity) {
  FakeProbeSource source(testdata("platform/macos-m3"));
  source.uname_value = {"Darwin", "25.4.0", "arm64"};
  source.commands[{"sw_vers", "-productVersion"}] = "26.4\n";
  DoctorReport report = doctor_with_logs({"macos-iogpu-prepare-count-underflow.m3-ultra.ips"}, &source);
  ASSERT_EQ(report.findings.size(), 1u);
  EXPECT_EQ(report.findings[0].severity, Severity::kCritical);
  EXPECT_EQ(report.findings[0].evidence.size(), 2u);  // this machine + the panic line
  EXPECT_EQ(doctor_exit_code(report), 3);
}

}  // namespace
}  // namespace keel::doctor
