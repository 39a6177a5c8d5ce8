#include "doctor/finding.h"

#include <algorithm>

namespace keel::doctor {

const char* severity_name(Severity severity) {
  switch (severity) {
    case Severity::kInfo: return "info";
    case Severity::kWarning: return "warning";
    case Severity::kCritical: return "critical";
  }
  return "info";
}

std::optional<Severity> parse_severity(std::string_view name) {
  if (name == "info") return Severity::kInfo;
  if (name == "warning") return Severity::kWarning;
  if (name == "critical") return Severity::kCritical;
  return std::nullopt;
}

void add_evidence(std::vector<Finding>& findings, const Finding& prototype, std::string line) {
  auto it = std::find_if(findings.begin(), findings.end(),
                         [&](const Finding& f) { return f.id == prototype.id; });
  if (it == findings.end()) {
    findings.push_back(prototype);
    findings.back().evidence.clear();
    it = findings.end() - 1;
  }
  it->severity = std::max(it->severity, prototype.severity);
  it->evidence.push_back(std::move(line));
}

bool has_critical(const std::vector<Finding>& findings) {
  return std::any_of(findings.begin(), findings.end(),
                     [](const Finding& f) { return f.severity == Severity::kCritical; });
}

void sort_by_severity(std::vector<Finding>& findings) {
  std::stable_sort(findings.begin(), findings.end(),
                   [](const Finding& a, const Finding& b) { return a.severity > b.severity; });
}

}  // namespace keel::doctor
