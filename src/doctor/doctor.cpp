#include "doctor/doctor.h"

#include "doctor/log_scan.h"
#include "doctor/startup.h"

namespace keel::doctor {

DoctorReport run_doctor(const DoctorOptions& options, env::Env* env, ProbeSource& source,
                        const KnownIssues& db) {
  DoctorReport report;
  report.platform = probe_platform(source, options.cache_dir);
  report.findings = startup_findings(report.platform, db);
  LogScan scan = scan_logs(env, options.logs, db);
  for (auto& finding : scan.findings) {
    for (auto& line : finding.evidence) add_evidence(report.findings, finding, line);
  }
  report.problems = std::move(scan.problems);
  sort_by_severity(report.findings);
  return report;
}

int doctor_exit_code(const DoctorReport& report) {
  if (has_critical(report.findings)) return 3;
  if (!report.problems.empty()) return 1;
  return 0;
}

nlohmann::ordered_json report_to_json(const DoctorReport& report) {
  nlohmann::ordered_json findings = nlohmann::ordered_json::array();
  for (const auto& f : report.findings) {
    findings.push_back(nlohmann::ordered_json{{"id", f.id},
                        {"severity", severity_name(f.severity)},
                        {"title", f.title},
                        {"evidence", f.evidence},
                        {"advice", f.advice}});
  }
  nlohmann::ordered_json out;
  out["platform"] = platform_to_json(report.platform);
  out["findings"] = std::move(findings);
  return out;
}

}  // namespace keel::doctor
