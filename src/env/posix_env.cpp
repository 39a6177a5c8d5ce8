#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "env/env.h"

namespace keel::env {

namespace {

Status errno_status(const std::string& what, const std::string& path, int err) {
  if (err == ENOENT) return not_found("{}: {} (while trying to {})", path, std::strerror(err), what);
  if (err == ENOSPC || err == EDQUOT)
    return resource_exhausted("{}: {} (while trying to {})", path, std::strerror(err), what);
  return io_error("{}: {} (while trying to {})", path, std::strerror(err), what);
}

std::string parent_dir(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

Status fsync_dir(const std::string& dir) {
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return errno_status("open directory", dir, errno);
  int rc = ::fsync(dfd);
  int err = errno;
  ::close(dfd);
  if (rc != 0) return errno_status("fsync directory", dir, err);
  return Status();
}

class PosixRandomAccessFile final : public RandomAccessFile {
 public:
  PosixRandomAccessFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~PosixRandomAccessFile() override { ::close(fd_); }
  Result<size_t> read_at(uint64_t offset, void* dst, size_t n) const override {
    char* p = static_cast<char*>(dst);
    size_t got = 0;
    while (got < n) {
      ssize_t r = ::pread(fd_, p + got, n - got, static_cast<off_t>(offset + got));
      if (r < 0) {
        if (errno == EINTR) continue;
        return errno_status("read", path_, errno);
      }
      if (r == 0) break;  // end of file
      got += static_cast<size_t>(r);
    }
    return got;
  }
  Result<uint64_t> size() const override {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) return errno_status("stat", path_, errno);
    return static_cast<uint64_t>(st.st_size);
  }
  const std::string& path() const override { return path_; }

 private:
  std::string path_;
  int fd_;
};

class PosixFileLock final : public FileLock {
 public:
  explicit PosixFileLock(int fd) : fd_(fd) {}
  ~PosixFileLock() override { ::close(fd_); }  // releases the flock

 private:
  int fd_;
};

class PosixMappedFile final : public MappedFile {
 public:
  PosixMappedFile(std::string path, void* base, size_t size)
      : path_(std::move(path)), base_(base), size_(size) {}
  ~PosixMappedFile() override {
    if (base_ != nullptr && size_ > 0) munmap(base_, size_);
  }
  const uint8_t* data() const override { return static_cast<const uint8_t*>(base_); }
  size_t size() const override { return size_; }
  const std::string& path() const override { return path_; }

 private:
  std::string path_;
  void* base_;
  size_t size_;
};

class PosixWritableFile final : public WritableFile {
 public:
  PosixWritableFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~PosixWritableFile() override {
    if (fd_ >= 0) ::close(fd_);
  }
  Status append(const void* data, size_t n) override {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      ssize_t w = ::write(fd_, p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        return errno_status("write", path_, errno);
      }
      p += w;
      n -= static_cast<size_t>(w);
    }
    return Status();
  }
  Status sync() override {
    if (::fdatasync(fd_) != 0) return errno_status("fsync", path_, errno);
    return Status();
  }
  Status close() override {
    if (fd_ < 0) return Status();
    int rc = ::close(fd_);
    fd_ = -1;
    if (rc != 0) return errno_status("close", path_, errno);
    return Status();
  }

 private:
  std::string path_;
  int fd_;
};

class PosixEnv final : public Env {
  static Result<std::unique_ptr<WritableFile>> create_exclusive(const std::string& path, mode_t mode) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0) return errno_status("create", path, errno);
    return std::unique_ptr<WritableFile>(new PosixWritableFile(path, fd));
  }

 public:
  Result<std::string> read_file(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno_status("open", path, errno);
    std::string out;
    char buf[1 << 16];
    while (true) {
      ssize_t r = ::read(fd, buf, sizeof(buf));
      if (r < 0) {
        if (errno == EINTR) continue;
        int err = errno;
        ::close(fd);
        return errno_status("read", path, err);
      }
      if (r == 0) break;
      out.append(buf, static_cast<size_t>(r));
    }
    ::close(fd);
    return out;
  }

  Result<std::unique_ptr<MappedFile>> map_file(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno_status("open", path, errno);
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      int err = errno;
      ::close(fd);
      return errno_status("stat", path, err);
    }
    size_t size = static_cast<size_t>(st.st_size);
    void* base = nullptr;
    if (size > 0) {
      base = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
      if (base == MAP_FAILED) {
        int err = errno;
        ::close(fd);
        return errno_status("mmap", path, err);
      }
    }
    ::close(fd);
    return std::unique_ptr<MappedFile>(new PosixMappedFile(path, base, size));
  }

  Result<std::unique_ptr<WritableFile>> new_writable_file(const std::string& path,
                                                          bool truncate) override {
    int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (truncate ? O_TRUNC : O_APPEND);
    int fd = ::open(path.c_str(), flags, 0644);
    if (fd < 0) return errno_status("create", path, errno);
    return std::unique_ptr<WritableFile>(new PosixWritableFile(path, fd));
  }

  Status write_file_atomic(const std::string& path, const std::string& contents) override {
    // A temporary file left by a crash is removed first: the new one is created exclusively (never through
    // a link someone planted under its name).
    std::string tmp = path + ".tmp";
    if (::unlink(tmp.c_str()) != 0 && errno != ENOENT) return errno_status("remove", tmp, errno);
    KEEL_ASSIGN_OR_RETURN(auto file, create_exclusive(tmp, 0644));
    KEEL_RETURN_IF_ERROR(file->append(contents.data(), contents.size()));
    KEEL_RETURN_IF_ERROR(file->sync());
    KEEL_RETURN_IF_ERROR(file->close());
    KEEL_RETURN_IF_ERROR(rename_file(tmp, path));
    return fsync_dir(parent_dir(path));
  }

  Result<std::unique_ptr<WritableFile>> create_new_file(const std::string& path) override {
    KEEL_ASSIGN_OR_RETURN(auto file, create_exclusive(path, 0600));
    KEEL_RETURN_IF_ERROR(fsync_dir(parent_dir(path)));
    return file;
  }

  Result<std::unique_ptr<RandomAccessFile>> open_random_access(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return errno_status("open", path, errno);
    return std::unique_ptr<RandomAccessFile>(new PosixRandomAccessFile(path, fd));
  }

  Status create_private_dir(const std::string& path) override {
    if (is_directory(path)) return Status();
    const std::string parent = parent_dir(path);
    if (parent != "." && parent != "/") KEEL_RETURN_IF_ERROR(create_dirs(parent));
    if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) return errno_status("create directory", path, errno);
    return fsync_dir(parent);
  }

  Status sync_dir(const std::string& path) override { return fsync_dir(path); }

  Result<std::unique_ptr<FileLock>> lock_file(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return errno_status("open lock file", path, errno);
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      char buf[32] = {};
      ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
      ::close(fd);
      if (err != EWOULDBLOCK) return errno_status("lock", path, err);
      std::string pid = n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
      while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
      return io_error("{}: held by process {} (one keel process at a time may own this directory)", path,
                      pid.empty() ? std::string("(unknown pid)") : pid);
    }
    // Ours now: record the pid for whoever is refused next.
    const std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
      const int err = errno;
      ::close(fd);
      return errno_status("write pid into", path, err);
    }
    return std::unique_ptr<FileLock>(new PosixFileLock(fd));
  }

  bool file_exists(const std::string& path) override { return ::access(path.c_str(), F_OK) == 0; }

  bool is_directory(const std::string& path) override {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
  }

  Result<uint64_t> file_size(const std::string& path) override {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return errno_status("stat", path, errno);
    return static_cast<uint64_t>(st.st_size);
  }

  Result<std::vector<std::string>> list_dir(const std::string& path) override {
    DIR* d = ::opendir(path.c_str());
    if (d == nullptr) return errno_status("list directory", path, errno);
    std::vector<std::string> names;
    while (struct dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name != "." && name != "..") names.push_back(name);
    }
    ::closedir(d);
    return names;
  }

  Status create_dirs(const std::string& path) override {
    std::string partial;
    for (size_t i = 0; i <= path.size(); i++) {
      if (i == path.size() || path[i] == '/') {
        if (!partial.empty() && !is_directory(partial)) {
          if (::mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST)
            return errno_status("create directory", partial, errno);
        }
      }
      if (i < path.size()) partial += path[i];
    }
    return Status();
  }

  Status remove_file(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return errno_status("remove", path, errno);
    return Status();
  }

  Status rename_file(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) return errno_status("rename to " + to, from, errno);
    return Status();
  }

  Result<uint64_t> disk_free_bytes(const std::string& path) override {
    struct statvfs st {};
    if (::statvfs(path.c_str(), &st) != 0) return errno_status("statvfs", path, errno);
    return static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
  }

  uint64_t now_micros() override {
    using namespace std::chrono;
    return static_cast<uint64_t>(
        duration_cast<microseconds>(steady_clock::now().time_since_epoch()).count());
  }
};

}  // namespace

Result<std::unique_ptr<WritableFile>> Env::create_new_file(const std::string& path) {
  return unsupported("this Env cannot create {} exclusively", path);
}
Result<std::unique_ptr<RandomAccessFile>> Env::open_random_access(const std::string& path) {
  return unsupported("this Env cannot open {} for reading by offset", path);
}
Status Env::create_private_dir(const std::string& path) { return create_dirs(path); }
Status Env::sync_dir(const std::string&) { return Status(); }
Result<std::unique_ptr<FileLock>> Env::lock_file(const std::string& path) {
  return unsupported("this Env cannot lock {}", path);
}

bool is_disk_full(const Status& s) { return s.code() == Code::kResourceExhausted; }

Env* Env::posix() {
  static PosixEnv env;
  return &env;
}

std::string join_path(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  if (dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

}  // namespace keel::env
