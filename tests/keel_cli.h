// Runs the built keel binary as a user would, for the end-to-end tests: stdout and stderr kept apart (or
// stderr merged into stdout), and the exit code.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace keel::test {

struct CliRun {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// `args` must already be shell-quoted. timeout_s > 0: killed after that long (exit code 124), so a hung group fails
// its test instead of the whole run.
inline CliRun run_keel(const std::string& args, bool merge_stderr = false, int timeout_s = 0) {
  static std::atomic<int> counter{0};
  const std::string err_file =
      "/tmp/keel_e2e_stderr_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
  const std::string limit = timeout_s > 0 ? "timeout -k 5 " + std::to_string(timeout_s) + " " : "";
  const std::string cmd = limit + KEEL_BINARY + " " + args + (merge_stderr ? " 2>&1" : " 2>" + err_file);
  CliRun r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (!merge_stderr) {
    std::ifstream e(err_file);
    r.err.assign(std::istreambuf_iterator<char>(e), {});
    std::remove(err_file.c_str());
  }
  return r;
}

// Token ids as the CLI takes them: "1 2 3".
inline std::string joined(const std::vector<int>& ids) {
  std::string s;
  for (int id : ids) {
    if (!s.empty()) s += ' ';
    s += std::to_string(id);
  }
  return s;
}

}  // namespace keel::test
