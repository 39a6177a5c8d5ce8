// Env: every file, directory and clock access goes through here so tests can inject faults (leveldb's Env).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"

namespace keel::env {

// A read-only view of a whole file, memory-mapped where the Env can.
class MappedFile {
 public:
  virtual ~MappedFile() = default;
  virtual const uint8_t* data() const = 0;
  virtual size_t size() const = 0;
  virtual const std::string& path() const = 0;
};

// A file opened for appending; bytes are durable only after sync().
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual Status append(const void* data, size_t n) = 0;
  virtual Status sync() = 0;
  virtual Status close() = 0;
};

class Env {
 public:
  virtual ~Env() = default;

  virtual Result<std::string> read_file(const std::string& path) = 0;
  virtual Result<std::unique_ptr<MappedFile>> map_file(const std::string& path) = 0;
  virtual Result<std::unique_ptr<WritableFile>> new_writable_file(const std::string& path,
                                                                  bool truncate) = 0;
  // Writes `contents` to `path` durably: a temporary file, fsync, rename, fsync of the directory.
  virtual Status write_file_atomic(const std::string& path, const std::string& contents) = 0;

  virtual bool file_exists(const std::string& path) = 0;
  virtual bool is_directory(const std::string& path) = 0;
  virtual Result<uint64_t> file_size(const std::string& path) = 0;
  virtual Result<std::vector<std::string>> list_dir(const std::string& path) = 0;
  virtual Status create_dirs(const std::string& path) = 0;
  virtual Status remove_file(const std::string& path) = 0;
  virtual Status rename_file(const std::string& from, const std::string& to) = 0;
  virtual Result<uint64_t> disk_free_bytes(const std::string& path) = 0;

  virtual uint64_t now_micros() = 0;

  // The process-wide POSIX Env. Tests construct their own Envs instead.
  static Env* posix();
};

// "dir" + "/" + "name", without doubling the slash.
std::string join_path(const std::string& dir, const std::string& name);

}  // namespace keel::env
