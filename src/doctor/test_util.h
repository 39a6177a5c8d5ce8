// Shared helpers for the doctor tests: fixture paths and a fake ProbeSource.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "doctor/platform.h"

namespace keel::doctor::testing {

inline std::string testdata(const std::string& rel) {
  return std::string(KEEL_SOURCE_DIR) + "/src/doctor/testdata/" + rel;
}

// Files come from a fixture root (a fake /proc, /sys, /etc); everything else is canned.
class FakeProbeSource final : public ProbeSource {
 public:
  explicit FakeProbeSource(const std::string& root) : files_(host_probe_source(env::Env::posix(), root)) {}

  Uname uname_value{"Linux", "6.1.0-26-amd64", "x86_64"};
  bool uname_fails = false;
  std::map<std::vector<std::string>, std::string> commands;  // argv -> stdout; others fail
  std::optional<uint64_t> memlock = 8ull << 20;
  bool memlock_fails = false;
  std::map<std::string, uint64_t> free_bytes;  // directory -> free bytes
  NvidiaInfo nvidia_value;

  Result<Uname> uname() override {
    if (uname_fails) return io_error("uname: fake failure");
    return uname_value;
  }
  Result<std::string> read_file(const std::string& path) override { return files_->read_file(path); }
  Result<std::string> run(const std::vector<std::string>& argv) override {
    auto it = commands.find(argv);
    if (it == commands.end()) return not_found("{}: not found", argv.empty() ? "" : argv[0]);
    return it->second;
  }
  bool is_directory(const std::string& path) override { return files_->is_directory(path); }
  Result<uint64_t> disk_free_bytes(const std::string& path) override {
    auto it = free_bytes.find(path);
    if (it == free_bytes.end()) return not_found("{}: no such directory", path);
    return it->second;
  }
  Result<std::optional<uint64_t>> memlock_limit() override {
    if (memlock_fails) return io_error("getrlimit: fake failure");
    return memlock;
  }
  NvidiaInfo nvidia() override { return nvidia_value; }

 private:
  std::unique_ptr<ProbeSource> files_;
};

}  // namespace keel::doctor::testing
