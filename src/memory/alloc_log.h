// AllocLog (--alloc-log FILE): one JSON object per line for every allocation of 64 MiB or more, synced as it is
// written so that the line survives the crash it may explain. `keel doctor --log FILE` reads it back
// (src/doctor/alloc_log.cpp); docs/MEMORY.md has the schema.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "base/status.h"
#include "env/env.h"
#include "memory/ledger.h"

namespace keel::memory {

struct AllocEntry {
  std::string purpose;  // "weights", "activations", "kv_pool", "hot_tier"
  uint64_t planned = 0;  // what the plan set aside for it
  uint64_t actual = 0;   // what it took
  std::string model;
  std::string dtype;                // "f32", "bf16"
  std::optional<int64_t> batch;     // tokens in the largest batch the buffer is sized for
  std::optional<int64_t> context;   // --max-model-len
  std::optional<uint64_t> budget;   // the plan's budget for this memory
  std::optional<uint64_t> in_use;   // bytes reserved once this allocation is counted
};

class AllocLog {
 public:
  static constexpr uint64_t kThresholdBytes = 64ull << 20;

  // Opens `path` through `env` for appending. An unwritable path is a startup error naming it and the flag.
  static Result<std::unique_ptr<AllocLog>> open(env::Env* env, const std::string& path,
                                                WallClock clock = system_wall_micros);

  // Appends and syncs one line when entry.actual (or, failing that, planned) is at least kThresholdBytes;
  // smaller allocations are not written. Thread-safe.
  Status record(const AllocEntry& entry);

  uint64_t lines_written() const;
  const std::string& path() const { return path_; }

 private:
  AllocLog(WallClock clock, std::string path, std::unique_ptr<env::WritableFile> file)
      : clock_(std::move(clock)), path_(std::move(path)), file_(std::move(file)) {}

  WallClock clock_;
  std::string path_;
  mutable std::mutex mu_;
  std::unique_ptr<env::WritableFile> file_;
  uint64_t lines_ = 0;
};

}  // namespace keel::memory
