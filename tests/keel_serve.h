// Shared by the end-to-end tests that talk to `keel serve` as a client does: one HTTP exchange, and keel serve
// run in the background (the demo model unless the arguments name another).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "dist/tcp_communicator.h"

namespace keel::test {

using Clock = std::chrono::steady_clock;

// One HTTP/1.1 exchange with Connection: close; returns "" when nothing answers.
inline std::string http(int port, const std::string& method, const std::string& path, const std::string& body = "") {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  timeval limit{120, 0};  // a hung server fails the test instead of stalling the run
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    ::close(fd);
    return "";
  }
  const std::string req = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" +
                          "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
                          "\r\n\r\n" + body;
  (void)!::write(fd, req.data(), req.size());
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

inline std::string body_of(const std::string& response) {
  const size_t at = response.find("\r\n\r\n");
  return at == std::string::npos ? "" : response.substr(at + 4);
}

// keel serve in the background, stderr to a file.
struct Server {
  pid_t pid = -1;
  int port = 0;
  std::string log;

  explicit Server(const std::string& args, const std::string& env = "", const std::string& backend = "cpu")
      : port(keel::dist::free_port()) {
    log = "/tmp/keel_serve_" + std::to_string(::getpid()) + "_" + std::to_string(port) + ".log";
    const std::string cmd = "exec env " + env + " " + std::string(KEEL_BINARY) + " serve --backend " + backend + " --port " +
                            std::to_string(port) + " --max-model-len 512 --max-num-seqs 8 " + args + " 2>" + log + " >/dev/null";
    pid = fork();
    if (pid == 0) {
      execl("/bin/sh", "sh", "-c", cmd.c_str(), nullptr);
      _exit(127);
    }
  }
  ~Server() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
    std::remove(log.c_str());
  }
  bool ready() {
    const auto end = Clock::now() + std::chrono::seconds(180);
    while (Clock::now() < end) {
      if (http(port, "GET", "/health").find("\"ok\"") != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }
  std::string stderr_text() const {
    std::ifstream in(log);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  // The exit code, or -1 if it is still running after `seconds`.
  int wait(double seconds) {
    const auto end = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
    while (Clock::now() < end) {
      int status = 0;
      if (waitpid(pid, &status, WNOHANG) == pid) {
        pid = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return -1;
  }
  // The rank pids the launcher reported.
  std::vector<pid_t> ranks() const {
    std::smatch m;
    const std::string text = stderr_text();
    std::vector<pid_t> out;
    if (std::regex_search(text, m, std::regex("launched \\d+ ranks \\(pids ([0-9 ]+)\\)"))) {
      std::istringstream in(m[1].str());
      for (pid_t p; in >> p;) out.push_back(p);
    }
    return out;
  }
};

}  // namespace keel::test
