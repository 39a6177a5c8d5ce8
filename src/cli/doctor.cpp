#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "cli/commands.h"
#include "doctor/doctor.h"

namespace keel::cli {

namespace {

// Where keel's SSD cache lives when --ssd-cache-dir is not given: the XDG cache directory.
std::string default_cache_dir() {
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && *xdg != '\0') {
    return std::string(xdg) + "/keel";
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    return std::string(home) + "/.cache/keel";
  }
  return ".";
}

}  // namespace

void add_doctor(CLI::App& app, Context& ctx) {
  struct Flags {
    std::vector<std::string> logs;
    bool json = false;
    std::string cache_dir;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("doctor", "Platform report and findings from known issues and logs");
  cmd->add_option("--log", flags->logs,
                  "Log to check (repeatable): macOS .panic/.ips, dmesg or journalctl -k text, keel --alloc-log");
  cmd->add_flag("--json", flags->json, "Print {\"platform\": ..., \"findings\": [...]} as JSON");
  cmd->add_option("--ssd-cache-dir", flags->cache_dir, "Cache directory whose free disk space to report");
  cmd->callback([flags, &ctx] {
    doctor::DoctorOptions options;
    options.logs = flags->logs;
    options.cache_dir = flags->cache_dir.empty() ? default_cache_dir() : flags->cache_dir;
    env::Env* env = env::Env::posix();
    auto source = doctor::host_probe_source(env);
    doctor::DoctorReport report = doctor::run_doctor(options, env, *source);
    for (const auto& problem : report.problems) std::fprintf(stderr, "error: %s\n", problem.c_str());
    if (flags->json) {
      std::cout << doctor::report_to_json(report).dump(2) << "\n";
    } else {
      std::cout << doctor::report_to_text(report);
    }
    ctx.exit_code = doctor::doctor_exit_code(report);
  });
}

}  // namespace keel::cli
