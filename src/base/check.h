// Invariants of keel's own bookkeeping: checked, never discarded. A broken one is a bug, and going on would hand
// one request's KV to another, so the process stops with what broke, where, and the values involved.
#pragma once

#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "base/status.h"

namespace keel {

[[noreturn]] inline void check_failed(const char* file, int line, const char* condition, const std::string& message) {
  std::fprintf(stderr, "keel: invariant broken at %s:%d: %s: %s\n", file, line, condition, message.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace keel

// KEEL_CHECK(cond, "format", args...): aborts with the formatted message when `cond` is false.
#define KEEL_CHECK(cond, ...)                                                        \
  do {                                                                               \
    if (!(cond)) ::keel::check_failed(__FILE__, __LINE__, #cond, fmt::format(__VA_ARGS__)); \
  } while (0)

// KEEL_CHECK_OK(status_expr, "why it cannot fail"): aborts with the Status's message when it is not ok.
#define KEEL_CHECK_OK(expr, why)                                                                    \
  do {                                                                                              \
    const ::keel::Status keel_check_status_ = (expr);                                               \
    if (!keel_check_status_.ok())                                                                   \
      ::keel::check_failed(__FILE__, __LINE__, #expr, std::string(why) + ": " + keel_check_status_.message()); \
  } while (0)
