// `keel doctor --log FILE`: reads macOS panic reports (.panic text, .ips JSON), Linux kernel logs (dmesg,
// journalctl -k, syslog) and keel's --alloc-log JSONL, and turns matching lines into findings.
#pragma once

#include <string>
#include <vector>

#include "doctor/finding.h"
#include "doctor/known_issues.h"
#include "env/env.h"

namespace keel::doctor {

enum class LogKind { kText, kIps, kAllocLog };

const char* log_kind_name(LogKind kind);  // "kernel/panic text", "macOS .ips report", "keel alloc log"

// What one file is, from its contents (the name only breaks ties: a ".ips" that is not JSON is an error).
Result<LogKind> detect_log_kind(const std::string& name, const std::string& contents);

struct LogScan {
  std::vector<Finding> findings;
  // One line per file that could not be read or was only partly understood: "FILE: why".
  std::vector<std::string> problems;
};

// At most this many quoted lines per issue and file; the rest are counted.
inline constexpr size_t kMaxEvidencePerFile = 5;

// Scans `contents` (already read) as the log `name`, adding to `scan`.
void scan_log_contents(const std::string& name, const std::string& contents, const KnownIssues& db,
                       LogScan& scan);

// Reads each path through `env` and scans it; a file that fails is reported and the others still read.
LogScan scan_logs(env::Env* env, const std::vector<std::string>& paths, const KnownIssues& db);

}  // namespace keel::doctor
