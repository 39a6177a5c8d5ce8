// What keel doctor reports: a known issue that matched, with the log lines or platform facts behind it.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace keel::doctor {

enum class Severity { kInfo = 0, kWarning = 1, kCritical = 2 };

const char* severity_name(Severity severity);  // "info", "warning", "critical"
std::optional<Severity> parse_severity(std::string_view name);

struct Finding {
  std::string id;
  Severity severity = Severity::kInfo;
  std::string title;
  // Quoted log lines ("kern.log:12: <line>") or platform facts ("driver 570.86.15 < 580.65.06").
  std::vector<std::string> evidence;
  std::string advice;
};

// Adds `line` to the finding for `id`, creating it from the other fields when it is new, so one issue
// seen many times (an Xid on every GPU) is one finding with several lines of evidence.
void add_evidence(std::vector<Finding>& findings, const Finding& prototype, std::string line);

bool has_critical(const std::vector<Finding>& findings);

// Most severe first; ties keep their order.
void sort_by_severity(std::vector<Finding>& findings);

}  // namespace keel::doctor
