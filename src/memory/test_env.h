// An in-memory Env for the memory tests: files are strings, the clock is set by the test, and paths under
// /readonly/ refuse to open, as a directory without write permission does.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "env/env.h"
#include "memory/ledger.h"

namespace keel::memory::testing {

class MemEnv final : public env::Env {
 public:
  uint64_t clock_micros = 1764151200000000;  // 2025-11-26T10:00:00Z
  WallClock clock() {
    return [this] { return clock_micros; };
  }

  std::string contents(const std::string& path) {
    std::lock_guard<std::mutex> lock(mu_);
    return files_[path];
  }
  int syncs() {
    std::lock_guard<std::mutex> lock(mu_);
    return syncs_;
  }

  Result<std::string> read_file(const std::string& path) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = files_.find(path);
    if (it == files_.end()) return not_found("{}: no such file", path);
    return it->second;
  }
  Result<std::unique_ptr<env::MappedFile>> map_file(const std::string& path) override {
    return unsupported("MemEnv: map_file {}", path);
  }
  Result<std::unique_ptr<env::WritableFile>> new_writable_file(const std::string& path, bool truncate) override {
    if (path.starts_with("/readonly/")) return io_error("create {}: Permission denied", path);
    std::lock_guard<std::mutex> lock(mu_);
    if (truncate) files_[path].clear();
    files_.try_emplace(path);
    return std::unique_ptr<env::WritableFile>(new File(this, path));
  }
  Status write_file_atomic(const std::string& path, const std::string& contents) override {
    std::lock_guard<std::mutex> lock(mu_);
    files_[path] = contents;
    return Status();
  }
  bool file_exists(const std::string& path) override {
    std::lock_guard<std::mutex> lock(mu_);
    return files_.count(path) > 0;
  }
  bool is_directory(const std::string&) override { return false; }
  Result<uint64_t> file_size(const std::string& path) override {
    KEEL_ASSIGN_OR_RETURN(std::string c, read_file(path));
    return static_cast<uint64_t>(c.size());
  }
  Result<std::vector<std::string>> list_dir(const std::string& path) override {
    return unsupported("MemEnv: list_dir {}", path);
  }
  Status create_dirs(const std::string&) override { return Status(); }
  Status remove_file(const std::string& path) override {
    std::lock_guard<std::mutex> lock(mu_);
    files_.erase(path);
    return Status();
  }
  Status rename_file(const std::string& from, const std::string& to) override {
    std::lock_guard<std::mutex> lock(mu_);
    files_[to] = files_[from];
    files_.erase(from);
    return Status();
  }
  Result<uint64_t> disk_free_bytes(const std::string&) override { return uint64_t{1} << 40; }
  uint64_t now_micros() override { return clock_micros; }

 private:
  class File final : public env::WritableFile {
   public:
    File(MemEnv* env, std::string path) : env_(env), path_(std::move(path)) {}
    Status append(const void* data, size_t n) override {
      std::lock_guard<std::mutex> lock(env_->mu_);
      env_->files_[path_].append(static_cast<const char*>(data), n);
      return Status();
    }
    Status sync() override {
      std::lock_guard<std::mutex> lock(env_->mu_);
      ++env_->syncs_;
      return Status();
    }
    Status close() override { return Status(); }

   private:
    MemEnv* env_;
    std::string path_;
  };

  std::mutex mu_;
  std::map<std::string, std::string> files_;
  int syncs_ = 0;
};

}  // namespace keel::memory::testing
