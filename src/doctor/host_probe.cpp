// The real machine behind ProbeSource: files through Env, a few fixed commands, getrlimit, NVML.
#include <spawn.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>

#include <cerrno>
#include <cstring>

#include "doctor/nvml.h"
#include "doctor/platform.h"

extern char** environ;

namespace keel::doctor {

namespace {

class HostProbeSource final : public ProbeSource {
 public:
  HostProbeSource(env::Env* env, std::string root) : env_(env), root_(std::move(root)) {}

  Result<Uname> uname() override {
    struct utsname u {};
    if (::uname(&u) != 0) return io_error("uname: {}", std::strerror(errno));
    return Uname{u.sysname, u.release, u.machine};
  }

  Result<std::string> read_file(const std::string& path) override { return env_->read_file(host_path(path)); }

  Result<std::string> run(const std::vector<std::string>& argv) override {
    if (argv.empty()) return invalid_argument("run: empty command");
    int fds[2];
    if (::pipe(fds) != 0) return io_error("pipe: {}", std::strerror(errno));
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid = 0;
    int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    if (rc != 0) {
      ::close(fds[0]);
      return not_found("{}: {}", argv[0], std::strerror(rc));
    }
    std::string out;
    char buf[4096];
    while (true) {
      ssize_t n = ::read(fds[0], buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    ::close(fds[0]);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return io_error("{}: exited with {}", argv[0], status);
    return out;
  }

  bool is_directory(const std::string& path) override { return env_->is_directory(host_path(path)); }

  Result<uint64_t> disk_free_bytes(const std::string& path) override {
    return env_->disk_free_bytes(host_path(path));
  }

  Result<std::optional<uint64_t>> memlock_limit() override {
    struct rlimit limit {};
    if (::getrlimit(RLIMIT_MEMLOCK, &limit) != 0) return io_error("getrlimit: {}", std::strerror(errno));
    if (limit.rlim_cur == RLIM_INFINITY) return std::optional<uint64_t>();
    return std::optional<uint64_t>(static_cast<uint64_t>(limit.rlim_cur));
  }

  NvidiaInfo nvidia() override { return probe_nvml(); }

 private:
  // Absolute paths are read under the root; relative ones (a cache dir given as "cache") as they are.
  std::string host_path(const std::string& path) const {
    if (root_.empty() || root_ == "/" || path.empty() || path[0] != '/') return path;
    return env::join_path(root_, path.substr(1));
  }

  env::Env* env_;
  std::string root_;
};

}  // namespace

std::unique_ptr<ProbeSource> host_probe_source(env::Env* env, std::string root) {
  return std::make_unique<HostProbeSource>(env, std::move(root));
}

}  // namespace keel::doctor
