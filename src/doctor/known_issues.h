// The known-issues database: data/known_issues.json, compiled into the binary (docs/DOCTOR.md has the
// format). Each entry can match log lines (signatures) and/or the platform keel runs on.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "doctor/finding.h"
#include "doctor/pattern.h"
#include "doctor/platform.h"

namespace keel::doctor {

// A half-open version interval [min, below); either end may be absent.
struct VersionRange {
  std::optional<std::string> min;
  std::optional<std::string> below;
  bool contains(const std::string& version) const;
  std::string describe() const;  // ">= 26.0", "< 580.65.06", ">= 1, < 2"
};

struct PlatformMatch {
  std::vector<std::string> os;  // empty: any
  std::optional<VersionRange> macos_version;
  std::optional<VersionRange> kernel_version;
  std::optional<VersionRange> driver_version;  // NVIDIA driver; never matches when there is none
};

struct KnownIssue {
  std::string id;
  Severity severity = Severity::kInfo;
  Severity platform_severity = Severity::kInfo;  // when matched by platform alone (at startup)
  std::string title;
  std::string explanation;
  std::string advice;
  std::vector<std::string> links;
  std::optional<PlatformMatch> platform;
  std::vector<Pattern> signatures;

  // The finding this entry produces, without evidence yet.
  Finding finding(Severity at) const;
  // Facts that matched ("macOS 26.4.1 (>= 26.0)"), or nullopt when the platform does not match.
  std::optional<std::string> match_platform(const Platform& platform) const;
  bool matches_line(std::string_view line) const;
};

class KnownIssues {
 public:
  // Parses and validates the JSON text (ids unique, severities known, regexes compile).
  static Result<KnownIssues> parse(const std::string& json_text, const std::string& where);
  // The table compiled into this binary from data/known_issues.json.
  static const KnownIssues& builtin();

  const std::vector<KnownIssue>& issues() const { return issues_; }
  const KnownIssue* find(std::string_view id) const;

 private:
  std::vector<KnownIssue> issues_;
};

// The text of data/known_issues.json as it was at build time (generated source).
std::string_view builtin_known_issues_json();

}  // namespace keel::doctor
