// One `keel serve` process for the end-to-end tests: arguments and extra environment given, stdout and stderr
// into a log file, where the listening port is read from.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace keel::test {

class ServeProcess {
 public:
  ServeProcess(std::vector<std::string> args, const std::string& log,
               std::vector<std::pair<std::string, std::string>> environment = {})
      : log_(log) {
    args.insert(args.begin(), {KEEL_BINARY, "serve"});
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::filesystem::remove(log);  // else the last run's port could be read before the child truncates it
    pid_ = fork();
    if (pid_ == 0) {
      const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd < 0) _exit(127);
      dup2(fd, STDERR_FILENO);
      dup2(fd, STDOUT_FILENO);
      for (const auto& [name, value] : environment) setenv(name.c_str(), value.c_str(), 1);
      execv(argv[0], argv.data());
      _exit(127);
    }
  }
  ~ServeProcess() {
    if (pid_ > 0 && !reaped_) kill9();
  }

  pid_t pid() const { return pid_; }
  // The port once the server listens; 0 when it exited (its log says why) or did not listen within two minutes.
  int wait_listening() {
    const std::regex listening("on http://[0-9.:a-f]+:([0-9]+)");
    for (int i = 0; i < 2400; i++) {
      std::smatch m;
      const std::string text = log_text();
      if (std::regex_search(text, m, listening)) return std::stoi(m[1]);
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        reaped_ = true;
        return 0;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return 0;
  }
  // Whether it still runs (a server that exited is reaped here).
  bool alive() {
    if (reaped_) return false;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) != pid_) return true;
    reaped_ = true;
    return false;
  }
  void kill9() {
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    reaped_ = true;
  }
  // SIGTERM and the exit code.
  int terminate() {
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    reaped_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  std::string log_text() const {
    std::ifstream f(log_);
    return std::string(std::istreambuf_iterator<char>(f), {});
  }

 private:
  std::string log_;
  pid_t pid_ = -1;
  bool reaped_ = false;
};

}  // namespace keel::test
