#include "doctor/alloc_log.h"

#include <nlohmann/json.hpp>

#include <map>
#include <sstream>

#include "base/units.h"

namespace keel::doctor {

namespace {

using nlohmann::json;

std::optional<uint64_t> get_bytes(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end()) return std::nullopt;
  if (it->is_number_unsigned()) return it->get<uint64_t>();
  if (it->is_number_integer() && it->get<int64_t>() >= 0) return static_cast<uint64_t>(it->get<int64_t>());
  if (it->is_number_float() && it->get<double>() >= 0) return static_cast<uint64_t>(it->get<double>());
  if (it->is_string()) {
    auto parsed = parse_bytes(it->get<std::string>());
    if (parsed.ok()) return *parsed;
  }
  return std::nullopt;
}

std::optional<int64_t> get_int(const json& j, const char* key) {
  auto it = j.find(key);
  if (it != j.end() && it->is_number_integer()) return it->get<int64_t>();
  return std::nullopt;
}

std::string get_text(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

AllocRecord to_record(const json& j, size_t line) {
  AllocRecord r;
  r.line = line;
  r.time = get_text(j, "time");
  r.purpose = get_text(j, "purpose");
  if (r.purpose.empty()) r.purpose = get_text(j, "what");
  r.model = get_text(j, "model");
  r.dtype = get_text(j, "dtype");
  r.bytes = get_bytes(j, "bytes");
  r.planned = get_bytes(j, "planned");
  if (!r.planned) r.planned = get_bytes(j, "estimated");
  r.actual = get_bytes(j, "actual");
  r.budget = get_bytes(j, "budget");
  r.in_use = get_bytes(j, "in_use");
  r.batch = get_int(j, "batch");
  r.context = get_int(j, "context");
  return r;
}

uint64_t size_of(const AllocRecord& r) { return r.actual ? *r.actual : r.bytes.value_or(0); }

std::string describe(const std::string& name, const AllocRecord& r) {
  std::ostringstream out;
  out << name << ":" << r.line << ": " << (r.purpose.empty() ? "allocation" : r.purpose) << " "
      << format_bytes(size_of(r));
  if (r.planned) out << " (planned " << format_bytes(*r.planned) << ")";
  if (!r.model.empty()) out << " model=" << r.model;
  if (r.batch) out << " batch=" << *r.batch;
  if (r.context) out << " context=" << *r.context;
  if (!r.dtype.empty()) out << " dtype=" << r.dtype;
  if (!r.time.empty()) out << " at " << r.time;
  return out.str();
}

void flag(const KnownIssues& db, const char* id, std::string evidence, LogScan& scan) {
  const KnownIssue* issue = db.find(id);
  if (issue == nullptr) return;  // a table without the alloc entries just does not check them
  add_evidence(scan.findings, issue->finding(issue->severity), std::move(evidence));
}

}  // namespace

void scan_alloc_log(const std::string& name, const std::string& contents, const KnownIssues& db,
                    LogScan& scan) {
  std::vector<AllocRecord> records;
  size_t bad_lines = 0, first_bad = 0, line_no = 0;
  std::istringstream in(contents);
  std::string line;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
      if (bad_lines++ == 0) first_bad = line_no;
      continue;
    }
    records.push_back(to_record(j, line_no));
  }
  if (bad_lines > 0) {
    scan.problems.push_back(fmt::format("{}: {} line(s) are not JSON objects (first at line {}); read the rest",
                                        name, bad_lines, first_bad));
  }

  uint64_t running = 0;
  size_t over_plan = 0, near_budget = 0;
  for (const auto& r : records) {
    running += size_of(r);
    // A few bytes of rounding (alignment, page granularity) is not a planning error: allow 1%.
    if (r.planned && r.actual && *r.actual > *r.planned + *r.planned / 100) {
      if (++over_plan <= kMaxEvidencePerFile) flag(db, "keel-alloc-over-plan", describe(name, r), scan);
    }
    if (r.budget && *r.budget > 0) {
      uint64_t in_use = r.in_use ? *r.in_use : running;
      if (static_cast<double>(in_use) >= kNearBudgetFraction * static_cast<double>(*r.budget)) {
        if (++near_budget <= kMaxEvidencePerFile) {
          flag(db, "keel-alloc-near-budget",
               fmt::format("{}; in use {} of budget {} ({:.1f}%)", describe(name, r), format_bytes(in_use),
                           format_bytes(*r.budget), 100.0 * static_cast<double>(in_use) / static_cast<double>(*r.budget)),
               scan);
        }
      }
    }
  }
  if (over_plan > kMaxEvidencePerFile) {
    flag(db, "keel-alloc-over-plan", fmt::format("{}: ... and {} more", name, over_plan - kMaxEvidencePerFile), scan);
  }
  if (near_budget > kMaxEvidencePerFile) {
    flag(db, "keel-alloc-near-budget", fmt::format("{}: ... and {} more", name, near_budget - kMaxEvidencePerFile),
         scan);
  }

  // Growing series: per purpose and model, the longest run of strictly increasing sizes.
  std::map<std::pair<std::string, std::string>, std::vector<const AllocRecord*>> series;
  for (const auto& r : records) series[{r.purpose, r.model}].push_back(&r);
  for (const auto& [key, items] : series) {
    size_t best_start = 0, best_len = 1, start = 0;
    for (size_t i = 1; i < items.size(); ++i) {
      if (size_of(*items[i]) <= size_of(*items[i - 1])) start = i;
      if (i - start + 1 > best_len) {
        best_len = i - start + 1;
        best_start = start;
      }
    }
    if (items.size() < kGrowingRun || best_len < kGrowingRun) continue;
    std::string sizes;
    for (size_t i = best_start; i < best_start + best_len; ++i) {
      sizes += (sizes.empty() ? "" : " -> ") + format_bytes(size_of(*items[i]));
    }
    const AllocRecord& last = *items[best_start + best_len - 1];
    flag(db, "keel-alloc-growing",
         fmt::format("{}:{}-{}: {} for model {} grew {} times in a row: {}", name, items[best_start]->line,
                     last.line, key.first.empty() ? "allocation" : key.first,
                     key.second.empty() ? "(none)" : key.second, best_len - 1, sizes),
         scan);
  }
}

}  // namespace keel::doctor
