#include "memory/ledger.h"

#include <chrono>
#include <ctime>

#include "base/units.h"

namespace keel::memory {

namespace {

const char* kind_name(LedgerEvent::Kind kind) {
  switch (kind) {
    case LedgerEvent::Kind::kAcquire: return "acquire";
    case LedgerEvent::Kind::kRelease: return "release";
    case LedgerEvent::Kind::kBadRelease: return "release (refused: no holder)";
  }
  return "?";
}

const char* plural(int64_t n, const char* one, const char* many) { return n == 1 ? one : many; }

}  // namespace

std::string iso8601_utc(uint64_t micros) {
  std::time_t seconds = static_cast<std::time_t>(micros / 1000000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, (micros / 1000) % 1000);
}

uint64_t system_wall_micros() {
  using namespace std::chrono;
  return static_cast<uint64_t>(duration_cast<microseconds>(system_clock::now().time_since_epoch()).count());
}

Ledger::Ledger(WallClock clock) : clock_(std::move(clock)) {}

void Ledger::add_event(Buffer& b, LedgerEvent::Kind kind, std::string_view by) {
  if (b.events.size() == kMaxHistory) {
    b.events.pop_front();
    ++b.dropped_events;
  }
  b.events.push_back({kind, step_, clock_(), std::string(by)});
}

Status Ledger::acquire(const std::string& id, std::string_view purpose, uint64_t bytes, std::string_view by) {
  std::lock_guard<std::mutex> lock(mu_);
  Buffer& b = buffers_[id];
  const int64_t held = b.acquires - b.releases;
  if (held > 0 && (b.purpose != purpose || b.bytes != bytes)) {
    return internal_error("ledger: acquire of {} as {} ({}) while it is held as {} ({})\n{}", id, purpose,
                          format_bytes(bytes), b.purpose, format_bytes(b.bytes), history_locked(id, b));
  }
  if (held == 0) {
    b.purpose = std::string(purpose);
    b.bytes = bytes;
    ++allocations_;
    if (warm_) ++allocations_after_warm_;
    bytes_reserved_ += bytes;
  }
  ++b.acquires;
  add_event(b, LedgerEvent::Kind::kAcquire, by);
  return Status();
}

Status Ledger::release(const std::string& id, std::string_view by) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = buffers_.find(id);
  if (it == buffers_.end()) {
    return internal_error("ledger: release of {} by {} without a matching acquire: the buffer was never acquired", id,
                          by.empty() ? "(unknown)" : by);
  }
  Buffer& b = it->second;
  if (b.acquires - b.releases <= 0) {
    add_event(b, LedgerEvent::Kind::kBadRelease, by);
    return internal_error("ledger: release of {} by {} without a matching acquire (release count would underflow)\n{}",
                          id, by.empty() ? "(unknown)" : by, history_locked(id, b));
  }
  ++b.releases;
  if (b.acquires == b.releases) bytes_reserved_ -= b.bytes;
  add_event(b, LedgerEvent::Kind::kRelease, by);
  return Status();
}

void Ledger::set_step(int64_t step) {
  std::lock_guard<std::mutex> lock(mu_);
  step_ = step;
}

void Ledger::mark_warm() {
  std::lock_guard<std::mutex> lock(mu_);
  warm_ = true;
}

Status Ledger::check_balanced() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  size_t unbalanced = 0;
  for (const auto& [id, b] : buffers_) {
    if (b.acquires == b.releases) continue;
    ++unbalanced;
    out += '\n';
    out += history_locked(id, b);
  }
  if (unbalanced == 0) return Status();
  return internal_error("ledger: {} {} not balanced at shutdown:{}", unbalanced,
                        plural(static_cast<int64_t>(unbalanced), "buffer is", "buffers are"), out);
}

uint64_t Ledger::allocations_total() const {
  std::lock_guard<std::mutex> lock(mu_);
  return allocations_;
}

uint64_t Ledger::allocations_after_warm() const {
  std::lock_guard<std::mutex> lock(mu_);
  return allocations_after_warm_;
}

uint64_t Ledger::bytes_reserved() const {
  std::lock_guard<std::mutex> lock(mu_);
  return bytes_reserved_;
}

int64_t Ledger::holders(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = buffers_.find(id);
  return it == buffers_.end() ? 0 : it->second.acquires - it->second.releases;
}

std::string Ledger::history(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = buffers_.find(id);
  if (it == buffers_.end()) return fmt::format("buffer {}: never acquired", id);
  return history_locked(id, it->second);
}

std::string Ledger::history_locked(const std::string& id, const Buffer& b) const {
  std::string out = fmt::format("buffer {} ({}, {}): {} {}, {} {}", id, b.purpose, format_bytes(b.bytes),
                                b.acquires, plural(b.acquires, "acquire", "acquires"), b.releases,
                                plural(b.releases, "release", "releases"));
  if (b.dropped_events > 0) out += fmt::format("\n  ... {} earlier events", b.dropped_events);
  for (const auto& e : b.events) {
    out += fmt::format("\n  {} step {} at {} by {}", kind_name(e.kind), e.step, iso8601_utc(e.time_micros),
                       e.by.empty() ? "(unknown)" : e.by);
  }
  return out;
}

}  // namespace keel::memory
