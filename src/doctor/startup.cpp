#include "doctor/startup.h"

namespace keel::doctor {

std::vector<Finding> startup_findings(const Platform& platform, const KnownIssues& db) {
  std::vector<Finding> findings;
  for (const auto& issue : db.issues()) {
    auto facts = issue.match_platform(platform);
    if (!facts) continue;
    add_evidence(findings, issue.finding(issue.platform_severity), "this machine: " + *facts);
  }
  sort_by_severity(findings);
  return findings;
}

}  // namespace keel::doctor
