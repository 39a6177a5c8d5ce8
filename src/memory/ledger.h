// Ledger: the acquire/release count of every buffer keel holds. A release the ledger has no matching acquire for
// is the user-space form of the macOS kernel panic "prepare count underflow" that local LLM servers caused by
// releasing GPU buffers twice: here it fails at once, naming the buffer and its history, instead of reaching the
// driver. At shutdown every buffer must balance. Thread-safe.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "base/status.h"

namespace keel::memory {

// Wall-clock microseconds since the Unix epoch. env::Env::now_micros() is a steady clock (right for timeouts,
// wrong for the dates in a history or a log line), so the wall clock is its own seam; tests pass a fake.
using WallClock = std::function<uint64_t()>;
uint64_t system_wall_micros();

struct LedgerEvent {
  enum class Kind { kAcquire, kRelease, kBadRelease };
  Kind kind = Kind::kAcquire;
  int64_t step = 0;          // the engine step when it happened (set_step), -1 before the first step
  uint64_t time_micros = 0;  // wall clock
  std::string by;            // who: "CpuBackend::alloc_kv", "engine", ...
};

class Ledger {
 public:
  // Each buffer keeps its last kMaxHistory events; older ones are counted, not kept.
  static constexpr size_t kMaxHistory = 32;

  explicit Ledger(WallClock clock = system_wall_micros);

  // Counts one acquire of buffer `id`. Taking it from zero holders is an allocation (counted, its bytes
  // reserved). Fails with kInternal when the buffer is held under another purpose or size.
  Status acquire(const std::string& id, std::string_view purpose, uint64_t bytes, std::string_view by = "");
  // Counts one release. Fails with kInternal, naming the buffer and its history, when it has no holder left
  // (never acquired, or released more often than acquired); the counts are then left as they were.
  Status release(const std::string& id, std::string_view by = "");

  // The engine step stamped on later events.
  void set_step(int64_t step);
  // From now on, allocations are counted as "after warm-up" (must stay 0 while serving).
  void mark_warm();

  // At shutdown: kInternal listing every buffer whose acquires and releases differ.
  Status check_balanced() const;

  uint64_t allocations_total() const;
  uint64_t allocations_after_warm() const;
  uint64_t bytes_reserved() const;  // bytes of the buffers held now
  int64_t holders(const std::string& id) const;  // acquires minus releases; 0 for an unknown id
  // "buffer kv_pool#0 (kv_pool, 4.0 GiB): 2 acquires, 1 release" then one line per event.
  std::string history(const std::string& id) const;

 private:
  struct Buffer {
    std::string purpose;
    uint64_t bytes = 0;
    int64_t acquires = 0;
    int64_t releases = 0;
    uint64_t dropped_events = 0;
    std::deque<LedgerEvent> events;
  };

  void add_event(Buffer& b, LedgerEvent::Kind kind, std::string_view by);
  std::string history_locked(const std::string& id, const Buffer& b) const;

  WallClock clock_;
  mutable std::mutex mu_;
  std::map<std::string, Buffer> buffers_;
  int64_t step_ = -1;
  bool warm_ = false;
  uint64_t allocations_ = 0;
  uint64_t allocations_after_warm_ = 0;
  uint64_t bytes_reserved_ = 0;
};

// 1764151200123456 -> "2025-11-26T10:00:00.123Z".
std::string iso8601_utc(uint64_t micros);

}  // namespace keel::memory
