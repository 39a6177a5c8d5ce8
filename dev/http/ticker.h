// Ticker: a stand-in for the engine in the transport benchmarks. Every `step` it hands one token to each open
// stream, stamped with the steady clock (ns) at that moment, as the engine's callback hands a token to a
// Completion. What a transport adds is the time from that stamp to the client's read (tools/sse_load.cpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

class Ticker {
 public:
  // Called on the ticker's thread; must not block.
  using Sink = std::function<void(int64_t emit_ns, bool last)>;

  explicit Ticker(std::chrono::milliseconds step) : step_(step), thread_([this] { loop(); }) {}
  ~Ticker() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    thread_.join();
  }
  uint64_t add(int tokens, Sink sink) {
    std::lock_guard lock(mu_);
    streams_[next_] = {tokens, std::move(sink)};
    return next_++;
  }
  void remove(uint64_t id) {
    std::lock_guard lock(mu_);
    streams_.erase(id);
  }
  static int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }

 private:
  struct Stream {
    int left = 0;
    Sink sink;
  };
  void loop() {
    auto next = std::chrono::steady_clock::now();
    while (true) {
      next += step_;
      std::this_thread::sleep_until(next);
      std::lock_guard lock(mu_);
      if (stop_) return;
      for (auto it = streams_.begin(); it != streams_.end();) {
        const bool last = --it->second.left == 0;
        it->second.sink(now_ns(), last);
        it = last ? streams_.erase(it) : std::next(it);
      }
    }
  }

  std::chrono::milliseconds step_;
  std::mutex mu_;
  std::map<uint64_t, Stream> streams_;
  uint64_t next_ = 1;
  bool stop_ = false;
  std::thread thread_;
};
