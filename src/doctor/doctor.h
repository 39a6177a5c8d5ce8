// `keel doctor`: the platform report plus findings from the known-issues table, as text or JSON.
// The CLI (src/cli/doctor.cpp) only parses flags and calls run_doctor.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "doctor/finding.h"
#include "doctor/known_issues.h"
#include "doctor/platform.h"
#include "env/env.h"

namespace keel::doctor {

struct DoctorOptions {
  std::vector<std::string> logs;  // --log, in order
  std::string cache_dir;          // --ssd-cache-dir (or the default cache directory)
};

struct DoctorReport {
  Platform platform;
  std::vector<Finding> findings;      // platform matches and log matches, most severe first
  std::vector<std::string> problems;  // files that could not be read or parsed
};

DoctorReport run_doctor(const DoctorOptions& options, env::Env* env, ProbeSource& source,
                        const KnownIssues& db = KnownIssues::builtin());

// 3 when a finding is critical, else 1 when a log could not be read or parsed, else 0.
int doctor_exit_code(const DoctorReport& report);

// {"platform": {...}, "findings": [{"id", "severity", "title", "evidence": [..], "advice"}]}
nlohmann::ordered_json report_to_json(const DoctorReport& report);
std::string report_to_text(const DoctorReport& report);

}  // namespace keel::doctor
