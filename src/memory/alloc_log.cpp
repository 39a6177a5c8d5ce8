#include "memory/alloc_log.h"

#include <nlohmann/json.hpp>

#include <algorithm>

namespace keel::memory {

Result<std::unique_ptr<AllocLog>> AllocLog::open(env::Env* env, const std::string& path, WallClock clock) {
  auto file = env->new_writable_file(path, /*truncate=*/false);
  if (!file.ok()) {
    return Status(file.status().code(),
                  fmt::format("--alloc-log {}: cannot open for appending: {}", path, file.status().message()));
  }
  return std::unique_ptr<AllocLog>(new AllocLog(std::move(clock), path, std::move(file).value()));
}

Status AllocLog::record(const AllocEntry& e) {
  if (std::max(e.actual, e.planned) < kThresholdBytes) return Status();
  // Keys in the order a reader scans them; "bytes" repeats "actual" for readers that know only one size.
  nlohmann::ordered_json j;
  j["time"] = iso8601_utc(clock_());
  j["purpose"] = e.purpose;
  j["bytes"] = e.actual;
  j["planned"] = e.planned;
  j["actual"] = e.actual;
  j["model"] = e.model;
  j["dtype"] = e.dtype;
  if (e.batch) j["batch"] = *e.batch;
  if (e.context) j["context"] = *e.context;
  if (e.budget) j["budget"] = *e.budget;
  if (e.in_use) j["in_use"] = *e.in_use;
  std::string line = j.dump() + "\n";

  std::lock_guard<std::mutex> lock(mu_);
  Status s = file_->append(line.data(), line.size());
  if (s.ok()) s = file_->sync();
  if (!s.ok()) return s.with_context("--alloc-log " + path_);
  ++lines_;
  return Status();
}

uint64_t AllocLog::lines_written() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lines_;
}

}  // namespace keel::memory
