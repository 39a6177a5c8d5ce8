// keel's own --alloc-log (JSONL, one object per large allocation) read back by keel doctor: flags
// allocations over their plan, memory in use near the budget, and series of allocations that keep growing.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "doctor/known_issues.h"
#include "doctor/log_scan.h"

namespace keel::doctor {

// One line of the alloc log. Sizes are byte counts (integers, or strings such as "8GiB").
struct AllocRecord {
  size_t line = 0;
  std::string time;     // as written (RFC 3339 text or seconds)
  std::string purpose;  // "weights", "kv_pool", "activations", "hot_tier" ("what" is accepted too)
  std::string model;
  std::string dtype;
  std::optional<uint64_t> bytes;    // size of this allocation
  std::optional<uint64_t> planned;  // what the governor planned for it
  std::optional<uint64_t> actual;   // what it took
  std::optional<uint64_t> budget;   // the governor's total budget
  std::optional<uint64_t> in_use;   // bytes held after this allocation
  std::optional<int64_t> batch;
  std::optional<int64_t> context;
};

// Memory in use at or above this fraction of the budget is "near the budget".
inline constexpr double kNearBudgetFraction = 0.95;
// This many allocations in a row, same purpose and model, each larger than the last, is "growing".
inline constexpr size_t kGrowingRun = 3;

void scan_alloc_log(const std::string& name, const std::string& contents, const KnownIssues& db,
                    LogScan& scan);

}  // namespace keel::doctor
