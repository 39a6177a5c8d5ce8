// One logger for the process: records with a level, a message and fields, written to stderr as text or as one
// JSON object a line (--log-level, --log-format; docs/CLI.md). spdlog underneath: spdlog::warn(...) calls land
// here too, without fields.
//
//   log::info("SSD cache rebuilt", {{"blocks", 1200}, {"dir", dir}});
//     text: keel: SSD cache rebuilt blocks=1200 dir=/var/cache/keel
//     json: {"ts":"2026-12-07T16:02:11.204Z","level":"info","msg":"SSD cache rebuilt","blocks":1200,"dir":"..."}
//
// Text keeps the shapes keel always printed: "keel: <msg>", "keel: warning: <msg>", "error: <msg>". Records are
// logs, not output: a command's result goes to stdout, and a user error that ends it is reported as the one line
// `error: <what>` of docs/CLI.md whatever the log format.
#pragma once

#include <concepts>
#include <initializer_list>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>

#include "base/status.h"

namespace keel::log {

enum class Level { kTrace, kDebug, kInfo, kWarn, kError };
enum class Format { kText, kJson };

// "trace", "debug", "info", "warn", "error"; "text", "json". Errors name the flag.
Result<Level> parse_level(std::string_view name);
Result<Format> parse_format(std::string_view name);
const char* level_name(Level level);

// One key and its value, kept as JSON text ("1200", "\"/var/cache\"", "true").
struct Field {
  Field(std::string key, std::string_view value);
  Field(std::string key, const char* value) : Field(std::move(key), std::string_view(value)) {}
  Field(std::string key, const std::string& value) : Field(std::move(key), std::string_view(value)) {}
  Field(std::string key, bool value) : key(std::move(key)), json(value ? "true" : "false") {}
  Field(std::string key, double value);
  template <std::integral T>
  Field(std::string key, T value) : key(std::move(key)), json(std::to_string(value)) {}

  std::string key;
  std::string json;
};
using Fields = std::initializer_list<Field>;

// Where and how every record of the process goes from now on: records below `level` are dropped; `out` null means
// stderr (tests pass a stream). Safe to call again; until the first call spdlog's own default applies.
void configure(Level level, Format format, std::ostream* out = nullptr);

void write(Level level, std::string_view msg, Fields fields = {});
inline void trace(std::string_view msg, Fields fields = {}) { write(Level::kTrace, msg, fields); }
inline void debug(std::string_view msg, Fields fields = {}) { write(Level::kDebug, msg, fields); }
inline void info(std::string_view msg, Fields fields = {}) { write(Level::kInfo, msg, fields); }
inline void warn(std::string_view msg, Fields fields = {}) { write(Level::kWarn, msg, fields); }
inline void error(std::string_view msg, Fields fields = {}) { write(Level::kError, msg, fields); }

// An error record, then abort(): for failures that leave the process nothing sensible to do (a broken device under
// an op that cannot return an error). The record is flushed before the abort.
[[noreturn]] void fatal(std::string_view msg, Fields fields = {});

// Whether a record at `level` would be written (to skip building an expensive message).
bool enabled(Level level);

}  // namespace keel::log
