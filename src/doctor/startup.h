// The check `keel serve` runs before loading a model: which known issues match this machine.
#pragma once

#include <vector>

#include "doctor/finding.h"
#include "doctor/known_issues.h"
#include "doctor/platform.h"

namespace keel::doctor {

// Every known issue whose "platform" block matches `platform`, at its platform severity, with the
// matching facts as evidence. Log-only issues (Xids, panics) never appear here. Serve prints a warning
// for each warning/critical one; --strict-platform refuses to start when has_critical() is true.
std::vector<Finding> startup_findings(const Platform& platform,
                                      const KnownIssues& db = KnownIssues::builtin());

}  // namespace keel::doctor
