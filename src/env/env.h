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

// A file read by offset (pread): a read past the end returns fewer bytes, never a signal, so a file that
// shrinks under a reader (truncated by someone else) reads as short, not as SIGBUS as a map would.
class RandomAccessFile {
 public:
  virtual ~RandomAccessFile() = default;
  // Reads up to `n` bytes at `offset` into `dst`; returns how many were read (fewer only at the end of file).
  virtual Result<size_t> read_at(uint64_t offset, void* dst, size_t n) const = 0;
  // The file's size now (fstat).
  virtual Result<uint64_t> size() const = 0;
  virtual const std::string& path() const = 0;
};

// An advisory lock on a file (flock), held until destroyed; the process's death releases it too (kill -9).
class FileLock {
 public:
  virtual ~FileLock() = default;
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

  // Hardened files for directories keel owns (the SSD tier); the defaults refuse, PosixEnv and FaultEnv
  // implement them. Every open below refuses to follow a symlink in the last component (O_NOFOLLOW).
  //
  // Creates a file that must not exist yet (O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC, mode 0600) and fsyncs its
  // directory, so the new name survives a crash.
  virtual Result<std::unique_ptr<WritableFile>> create_new_file(const std::string& path);
  // Opens an existing file for pread (O_RDONLY|O_NOFOLLOW|O_CLOEXEC).
  virtual Result<std::unique_ptr<RandomAccessFile>> open_random_access(const std::string& path);
  // Creates `path` (and missing parents, 0755) with mode 0700 for the last component; an existing directory
  // is left as it is.
  virtual Status create_private_dir(const std::string& path);
  // fsync of a directory: makes creates, renames and unlinks in it durable.
  virtual Status sync_dir(const std::string& path);
  // Takes an exclusive flock on `path` (created 0600 if missing, never through a symlink) without waiting
  // and writes this process's pid into it. Held by another process (or another open of it in this one): an
  // error naming the holder's pid as the file records it.
  virtual Result<std::unique_ptr<FileLock>> lock_file(const std::string& path);

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

// Errors: ENOENT is Code::kNotFound; ENOSPC and EDQUOT (a full disk or quota: the disk's budget) are
// Code::kResourceExhausted; every other errno is Code::kIOError. Callers recognise a full disk by code, never
// by the message's text.
bool is_disk_full(const Status& s);

// "dir" + "/" + "name", without doubling the slash.
std::string join_path(const std::string& dir, const std::string& name);

}  // namespace keel::env
