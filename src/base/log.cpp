#include "base/log.h"

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace keel::log {

namespace {

// A record's fields travel inside spdlog's payload after this byte, as the members of a JSON object ("k":v,...).
// Messages never contain it (an ASCII control character no message of keel's writes).
constexpr char kFieldsMark = '\x1f';

spdlog::level::level_enum to_spdlog(Level level) {
  switch (level) {
    case Level::kTrace: return spdlog::level::trace;
    case Level::kDebug: return spdlog::level::debug;
    case Level::kInfo: return spdlog::level::info;
    case Level::kWarn: return spdlog::level::warn;
    case Level::kError: return spdlog::level::err;
  }
  return spdlog::level::info;
}

const char* spdlog_level_name(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace: return "trace";
    case spdlog::level::debug: return "debug";
    case spdlog::level::info: return "info";
    case spdlog::level::warn: return "warn";
    case spdlog::level::err: return "error";
    case spdlog::level::critical: return "critical";
    default: return "off";
  }
}

// "2026-12-07T16:02:11.204Z"
std::string utc_timestamp(std::chrono::system_clock::time_point t) {
  const auto since = t.time_since_epoch();
  const std::time_t seconds = std::chrono::duration_cast<std::chrono::seconds>(since).count();
  const auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(since).count() % 1000;
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday,
                     utc.tm_hour, utc.tm_min, utc.tm_sec, millis);
}

// Text: a field's value as written after "key=": strings bare unless they hold a space or a quote.
std::string text_value(const nlohmann::ordered_json& value) {
  const std::string json = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (!value.is_string()) return json;
  const std::string& plain = value.get_ref<const std::string&>();
  if (plain.empty() || plain.find_first_of(" \t\n\"=") != std::string::npos) return json;
  return plain;
}

class Formatter final : public spdlog::formatter {
 public:
  explicit Formatter(Format format) : format_(format) {}

  void format(const spdlog::details::log_msg& record, spdlog::memory_buf_t& dest) override {
    const std::string_view payload(record.payload.data(), record.payload.size());
    std::string_view msg = payload;
    nlohmann::ordered_json fields = nlohmann::ordered_json::object();
    if (const size_t mark = payload.find(kFieldsMark); mark != std::string_view::npos) {
      // A payload that is not ours (a raw spdlog call whose text held the mark) stays whole, without fields.
      auto parsed = nlohmann::ordered_json::parse("{" + std::string(payload.substr(mark + 1)) + "}", nullptr, false);
      if (!parsed.is_discarded()) {
        msg = payload.substr(0, mark);
        fields = std::move(parsed);
      }
    }
    std::string line = format_ == Format::kJson ? json_line(record, msg, fields) : text_line(record, msg, fields);
    line += '\n';
    dest.append(line.data(), line.data() + line.size());
  }

  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<Formatter>(format_); }

 private:
  static std::string json_line(const spdlog::details::log_msg& record, std::string_view msg,
                               const nlohmann::ordered_json& fields) {
    nlohmann::ordered_json line;
    line["ts"] = utc_timestamp(record.time);
    line["level"] = spdlog_level_name(record.level);
    line["msg"] = std::string(msg);
    // A field never replaces ts, level or msg.
    for (const auto& [key, value] : fields.items()) line[line.contains(key) ? "field." + key : key] = value;
    return line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }

  static std::string text_line(const spdlog::details::log_msg& record, std::string_view msg,
                               const nlohmann::ordered_json& fields) {
    std::string line;
    switch (record.level) {
      case spdlog::level::info: line = "keel: "; break;
      case spdlog::level::warn: line = "keel: warning: "; break;
      case spdlog::level::err:
      case spdlog::level::critical: line = "error: "; break;
      default: line = fmt::format("keel: {}: ", spdlog_level_name(record.level)); break;
    }
    line += msg;
    for (const auto& [key, value] : fields.items()) line += " " + key + "=" + text_value(value);
    return line;
  }

  Format format_;
};

}  // namespace

Result<Level> parse_level(std::string_view name) {
  if (name == "trace") return Level::kTrace;
  if (name == "debug") return Level::kDebug;
  if (name == "info") return Level::kInfo;
  if (name == "warn") return Level::kWarn;
  if (name == "error") return Level::kError;
  return invalid_argument("--log-level {}: expected trace, debug, info, warn or error", name);
}

Result<Format> parse_format(std::string_view name) {
  if (name == "text") return Format::kText;
  if (name == "json") return Format::kJson;
  return invalid_argument("--log-format {}: expected text or json", name);
}

const char* level_name(Level level) { return spdlog_level_name(to_spdlog(level)); }

Field::Field(std::string key, std::string_view value)
    : key(std::move(key)),
      json(nlohmann::json(std::string(value)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)) {}

Field::Field(std::string key, double value)
    : key(std::move(key)), json(std::isfinite(value) ? fmt::format("{}", value) : "null") {}

void configure(Level level, Format format, std::ostream* out) {
  spdlog::sink_ptr sink;
  if (out != nullptr) {
    sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(*out, /*force_flush=*/true);
  } else {
    sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  }
  auto logger = std::make_shared<spdlog::logger>("keel", std::move(sink));
  logger->set_formatter(std::make_unique<Formatter>(format));
  logger->set_level(to_spdlog(level));
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(std::move(logger));
}

void write(Level level, std::string_view msg, Fields fields) {
  const spdlog::level::level_enum spd = to_spdlog(level);
  spdlog::logger* logger = spdlog::default_logger_raw();
  if (!logger->should_log(spd)) return;
  if (fields.size() == 0) {
    logger->log(spd, "{}", msg);
    return;
  }
  std::string payload(msg);
  std::replace(payload.begin(), payload.end(), kFieldsMark, ' ');
  payload += kFieldsMark;
  bool first = true;
  for (const Field& f : fields) {
    if (!first) payload += ',';
    first = false;
    payload += nlohmann::json(f.key).dump() + ":" + f.json;
  }
  logger->log(spd, "{}", payload);
}

void fatal(std::string_view msg, Fields fields) {
  write(Level::kError, msg, fields);
  spdlog::default_logger_raw()->flush();
  std::abort();
}

bool enabled(Level level) { return spdlog::default_logger_raw()->should_log(to_spdlog(level)); }

}  // namespace keel::log
