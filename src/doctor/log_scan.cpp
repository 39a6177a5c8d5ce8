#include "doctor/log_scan.h"

#include <nlohmann/json.hpp>

#include <map>

#include "base/json_parse.h"
#include "doctor/alloc_log.h"

namespace keel::doctor {

namespace {

using nlohmann::json;

constexpr size_t kMaxQuotedChars = 400;

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    if (end == text.size()) break;
    start = end + 1;
  }
  return lines;
}

std::string_view trim_view(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string quote(std::string_view line) {
  line = trim_view(line);
  if (line.size() <= kMaxQuotedChars) return std::string(line);
  return std::string(line.substr(0, kMaxQuotedChars)) + "...";
}

bool looks_binary(const std::string& contents) {
  size_t n = std::min<size_t>(contents.size(), 64 * 1024);
  return contents.find('\0') < n;
}

std::string_view first_nonempty_line(const std::string& contents) {
  for (std::string_view line : split_lines(contents)) {
    if (!trim_view(line).empty()) return trim_view(line);
  }
  return {};
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Matches every line of `lines` against every signature; `where(i)` names line i in the evidence.
template <typename Where>
void scan_lines(const std::vector<std::string_view>& lines, Where where, const std::string& name,
                const KnownIssues& db, LogScan& scan) {
  std::map<std::string, size_t> matched;  // id -> lines matched in this file
  for (size_t i = 0; i < lines.size(); ++i) {
    if (trim_view(lines[i]).empty()) continue;
    for (const auto& issue : db.issues()) {
      if (issue.signatures.empty() || !issue.matches_line(lines[i])) continue;
      if (++matched[issue.id] > kMaxEvidencePerFile) continue;
      add_evidence(scan.findings, issue.finding(issue.severity), where(i) + ": " + quote(lines[i]));
    }
  }
  for (const auto& [id, count] : matched) {
    if (count <= kMaxEvidencePerFile) continue;
    const KnownIssue* issue = db.find(id);
    add_evidence(scan.findings, issue->finding(issue->severity),
                 fmt::format("{}: ... and {} more matching lines", name, count - kMaxEvidencePerFile));
  }
}

void scan_text(const std::string& name, const std::string& text, const KnownIssues& db, LogScan& scan) {
  auto lines = split_lines(text);
  scan_lines(lines, [&](size_t i) { return fmt::format("{}:{}", name, i + 1); }, name, db, scan);
}

// An .ips report: one JSON header line (bug_type, os_version, ...), then a JSON body. For a kernel
// panic (bug_type 210) the body's "panicString" holds the same text a .panic file has.
void scan_ips(const std::string& name, const std::string& contents, const KnownIssues& db, LogScan& scan) {
  size_t newline = contents.find('\n');
  std::string body_text = newline == std::string::npos ? "" : contents.substr(newline + 1);
  // Bounded: the body is dumped below, recursively, and a log file is whatever the user points at.
  Result<json> parsed = parse_json_bounded<json>(body_text, kModelFileJsonDepth, ".ips body");
  if (!parsed.ok() || !parsed->is_object()) {
    const std::string why = parsed.ok() ? ".ips body is not valid JSON: not an object" : parsed.status().message();
    scan.problems.push_back(fmt::format("{}: {} (after the header line); scanned it as plain text", name, why));
    scan_text(name, contents, db, scan);
    return;
  }
  json body = std::move(parsed).value();
  auto panic = body.find("panicString");
  if (panic == body.end() || !panic->is_string()) {
    // Not a kernel panic (an app crash or a hang report): the whole body may still quote a signature.
    scan_text(name, body.dump(2), db, scan);
    return;
  }
  std::string text = panic->get<std::string>();
  auto lines = split_lines(text);
  scan_lines(lines, [&](size_t i) { return fmt::format("{} panicString:{}", name, i + 1); }, name, db, scan);
}

}  // namespace

const char* log_kind_name(LogKind kind) {
  switch (kind) {
    case LogKind::kText: return "kernel/panic text";
    case LogKind::kIps: return "macOS .ips report";
    case LogKind::kAllocLog: return "keel alloc log";
  }
  return "text";
}

Result<LogKind> detect_log_kind(const std::string& name, const std::string& contents) {
  if (looks_binary(contents)) return corruption("{}: binary data, not a text log", name);
  std::string_view first = first_nonempty_line(contents);
  if (!first.empty() && first.front() == '{') {
    json header = json::parse(first, nullptr, /*allow_exceptions=*/false);
    if (header.is_object()) {
      if (header.contains("bug_type")) return LogKind::kIps;
      if (header.contains("bytes") || header.contains("purpose") || header.contains("planned")) {
        return LogKind::kAllocLog;
      }
    }
  }
  if (ends_with(name, ".ips")) {
    return corruption("{}: not an .ips report (the first line is not a JSON header with \"bug_type\")", name);
  }
  if (ends_with(name, ".jsonl")) {
    return corruption("{}: not a keel alloc log (the first line is not a JSON object with \"bytes\")", name);
  }
  return LogKind::kText;
}

void scan_log_contents(const std::string& name, const std::string& contents, const KnownIssues& db,
                       LogScan& scan) {
  auto kind = detect_log_kind(name, contents);
  if (!kind.ok()) {
    scan.problems.push_back(kind.status().message());
    return;
  }
  switch (*kind) {
    case LogKind::kText: scan_text(name, contents, db, scan); break;
    case LogKind::kIps: scan_ips(name, contents, db, scan); break;
    case LogKind::kAllocLog: scan_alloc_log(name, contents, db, scan); break;
  }
}

LogScan scan_logs(env::Env* env, const std::vector<std::string>& paths, const KnownIssues& db) {
  LogScan scan;
  for (const auto& path : paths) {
    auto contents = env->read_file(path);
    if (!contents.ok()) {
      scan.problems.push_back(contents.status().message());
      continue;
    }
    scan_log_contents(path, *contents, db, scan);
  }
  return scan;
}

}  // namespace keel::doctor
