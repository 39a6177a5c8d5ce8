#include "doctor/known_issues.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <set>

namespace keel::doctor {

namespace {

using nlohmann::json;

Result<std::string> get_string(const json& object, const char* key, const std::string& where,
                               bool required) {
  auto it = object.find(key);
  if (it == object.end()) {
    if (required) return corruption("{}: missing \"{}\"", where, key);
    return std::string();
  }
  if (!it->is_string()) return corruption("{}: \"{}\" must be a string, got {}", where, key, it->type_name());
  return it->get<std::string>();
}

Result<std::vector<std::string>> get_strings(const json& object, const char* key,
                                             const std::string& where) {
  std::vector<std::string> out;
  auto it = object.find(key);
  if (it == object.end()) return out;
  if (!it->is_array()) return corruption("{}: \"{}\" must be an array of strings", where, key);
  for (const auto& item : *it) {
    if (!item.is_string()) return corruption("{}: \"{}\" must be an array of strings", where, key);
    out.push_back(item.get<std::string>());
  }
  return out;
}

Result<std::optional<VersionRange>> get_range(const json& object, const char* key,
                                              const std::string& where) {
  auto it = object.find(key);
  if (it == object.end()) return std::optional<VersionRange>();
  if (!it->is_object()) return corruption("{}: \"{}\" must be an object {{min, below}}", where, key);
  VersionRange range;
  for (const auto& [name, value] : it->items()) {
    if (!value.is_string()) return corruption("{}: \"{}.{}\" must be a string", where, key, name);
    if (name == "min") range.min = value.get<std::string>();
    else if (name == "below") range.below = value.get<std::string>();
    else return corruption("{}: \"{}\" has unknown key \"{}\" (expected min, below)", where, key, name);
  }
  return std::optional<VersionRange>(range);
}

Result<Severity> get_severity(const json& object, const char* key, const std::string& where) {
  KEEL_ASSIGN_OR_RETURN(std::string name, get_string(object, key, where, true));
  auto severity = parse_severity(name);
  if (!severity) return corruption("{}: \"{}\" is '{}', expected critical, warning or info", where, key, name);
  return *severity;
}

Result<KnownIssue> parse_issue(const json& entry, const std::string& where) {
  if (!entry.is_object()) return corruption("{}: entry must be an object", where);
  KnownIssue issue;
  KEEL_ASSIGN_OR_RETURN(issue.id, get_string(entry, "id", where, true));
  std::string at = where + " (" + issue.id + ")";
  KEEL_ASSIGN_OR_RETURN(issue.severity, get_severity(entry, "severity", at));
  issue.platform_severity = issue.severity;
  if (entry.contains("platform_severity")) {
    KEEL_ASSIGN_OR_RETURN(issue.platform_severity, get_severity(entry, "platform_severity", at));
  }
  KEEL_ASSIGN_OR_RETURN(issue.title, get_string(entry, "title", at, true));
  KEEL_ASSIGN_OR_RETURN(issue.explanation, get_string(entry, "explanation", at, true));
  KEEL_ASSIGN_OR_RETURN(issue.advice, get_string(entry, "advice", at, true));
  KEEL_ASSIGN_OR_RETURN(issue.links, get_strings(entry, "links", at));
  KEEL_ASSIGN_OR_RETURN(auto regexes, get_strings(entry, "signatures", at));
  for (const auto& regex : regexes) {
    auto pattern = Pattern::compile(regex);
    if (!pattern.ok()) return corruption("{}: {}", at, pattern.status().message());
    issue.signatures.push_back(std::move(pattern).value());
  }
  if (auto it = entry.find("platform"); it != entry.end()) {
    if (!it->is_object()) return corruption("{}: \"platform\" must be an object", at);
    for (const auto& [name, value] : it->items()) {
      if (name != "os" && name != "macos_version" && name != "kernel_version" && name != "driver_version") {
        return corruption("{}: \"platform\" has unknown key \"{}\"", at, name);
      }
    }
    PlatformMatch match;
    KEEL_ASSIGN_OR_RETURN(match.os, get_strings(*it, "os", at + " platform"));
    KEEL_ASSIGN_OR_RETURN(match.macos_version, get_range(*it, "macos_version", at));
    KEEL_ASSIGN_OR_RETURN(match.kernel_version, get_range(*it, "kernel_version", at));
    KEEL_ASSIGN_OR_RETURN(match.driver_version, get_range(*it, "driver_version", at));
    issue.platform = std::move(match);
  }
  return issue;
}

// A version fact as the match sees it: unknown versions never match a range.
bool range_matches(const std::optional<VersionRange>& range, const std::string& version,
                   const std::string& label, std::vector<std::string>& facts) {
  if (!range) return true;
  if (version.empty() || version == kUnknown) return false;
  if (!range->contains(version)) return false;
  facts.push_back(label + " " + version + " (" + range->describe() + ")");
  return true;
}

}  // namespace

bool VersionRange::contains(const std::string& version) const {
  if (min && compare_versions(version, *min) < 0) return false;
  if (below && compare_versions(version, *below) >= 0) return false;
  return true;
}

std::string VersionRange::describe() const {
  std::string out;
  if (min) out += ">= " + *min;
  if (below) out += (out.empty() ? "< " : ", < ") + *below;
  return out.empty() ? "any" : out;
}

Finding KnownIssue::finding(Severity at) const {
  Finding f;
  f.id = id;
  f.severity = at;
  f.title = title;
  f.advice = advice;
  return f;
}

std::optional<std::string> KnownIssue::match_platform(const Platform& p) const {
  if (!platform) return std::nullopt;
  std::vector<std::string> facts;
  if (!platform->os.empty()) {
    if (std::find(platform->os.begin(), platform->os.end(), p.os) == platform->os.end()) return std::nullopt;
    facts.push_back("os " + p.os);
  }
  if (!range_matches(platform->macos_version, p.macos_product_version, "macOS", facts)) return std::nullopt;
  if (!range_matches(platform->kernel_version, p.kernel, "kernel", facts)) return std::nullopt;
  if (!range_matches(platform->driver_version, p.nvidia.driver_version, "NVIDIA driver", facts)) {
    return std::nullopt;
  }
  std::string joined;
  for (const auto& fact : facts) joined += (joined.empty() ? "" : ", ") + fact;
  return joined;
}

bool KnownIssue::matches_line(std::string_view line) const {
  return std::any_of(signatures.begin(), signatures.end(),
                     [&](const Pattern& p) { return p.search(line); });
}

Result<KnownIssues> KnownIssues::parse(const std::string& json_text, const std::string& where) {
  json doc = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return corruption("{}: not valid JSON", where);
  if (!doc.is_object() || !doc.contains("issues") || !doc["issues"].is_array()) {
    return corruption("{}: expected an object with an \"issues\" array", where);
  }
  KnownIssues table;
  std::set<std::string> ids;
  size_t index = 0;
  for (const auto& entry : doc["issues"]) {
    KEEL_ASSIGN_OR_RETURN(KnownIssue issue,
                          parse_issue(entry, fmt::format("{}: issues[{}]", where, index++)));
    if (!ids.insert(issue.id).second) return corruption("{}: duplicate id '{}'", where, issue.id);
    table.issues_.push_back(std::move(issue));
  }
  return table;
}

const KnownIssues& KnownIssues::builtin() {
  static const KnownIssues table = [] {
    auto parsed = parse(std::string(builtin_known_issues_json()), "data/known_issues.json");
    if (!parsed.ok()) {
      // The table is checked by the unit tests; a broken one is a build error that slipped through.
      std::fprintf(stderr, "error: built-in known-issues table: %s\n", parsed.status().message().c_str());
      std::abort();
    }
    return std::move(parsed).value();
  }();
  return table;
}

const KnownIssue* KnownIssues::find(std::string_view id) const {
  for (const auto& issue : issues_) {
    if (issue.id == id) return &issue;
  }
  return nullptr;
}

}  // namespace keel::doctor
