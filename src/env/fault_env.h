// FaultEnv: an Env that forwards to another Env and lets a test program the failures a disk can produce:
// ENOSPC/EDQUOT on the Nth append or past a byte budget, a torn write followed by a simulated crash, bit
// flips in what is read back, a failing fsync, and a gate that holds appends to imitate a slow disk.
// Failures read exactly as PosixEnv's ("path: No space left on device (while trying to write)"), so code
// under test cannot tell them from the real thing.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "env/env.h"

namespace keel::env {

class FaultEnv final : public Env {
 public:
  explicit FaultEnv(Env* base) : base_(base) {}

  // Which errno a refused append reports.
  enum class Full { kNoSpace, kQuota };

  // The `n`th append from now (1 = the next one) fails with ENOSPC/EDQUOT; nothing of it is written.
  void fail_nth_append(int n, Full kind = Full::kNoSpace);
  // Appends succeed until `n` more bytes have been written; the append that crosses the limit writes
  // the bytes that fit and then fails, as write(2) on a full disk does. Later appends fail outright
  // until clear_faults().
  void fail_after_bytes(uint64_t n, Full kind = Full::kNoSpace);
  // The append that crosses `n` more bytes writes only the bytes up to that point, and the process
  // "crashes": that call and every later call on this Env or its files fails.
  void tear_after_bytes(uint64_t n);
  // The next `n` sync() calls fail with EIO (the data may or may not have reached the disk).
  void fail_next_syncs(int n);
  // Every read of a file whose path ends with `path_suffix` (read_file, map_file, read_at) returns the bytes
  // with bit `bit` of byte `offset` inverted. The file on disk is untouched.
  void flip_bit_on_read(const std::string& path_suffix, uint64_t offset, int bit);
  // While held, append() blocks until release_appends(): a disk that stops answering.
  void hold_appends();
  void release_appends();
  // now_micros() answers from a manual clock from now on: `start`, then `tick` more at every call (a clock that
  // moves only when read, so tests of timings are exact).
  void use_manual_clock(uint64_t start, uint64_t tick);
  // Removes every programmed fault (a crash stays: a crashed process does not come back).
  void clear_faults();

  bool crashed() const;
  uint64_t bytes_appended() const;
  int appends() const;
  int syncs() const;
  // Appends currently blocked by hold_appends().
  int blocked_appends() const;

  Result<std::string> read_file(const std::string& path) override;
  Result<std::unique_ptr<MappedFile>> map_file(const std::string& path) override;
  Result<std::unique_ptr<WritableFile>> new_writable_file(const std::string& path, bool truncate) override;
  Status write_file_atomic(const std::string& path, const std::string& contents) override;
  bool file_exists(const std::string& path) override;
  bool is_directory(const std::string& path) override;
  Result<uint64_t> file_size(const std::string& path) override;
  Result<std::vector<std::string>> list_dir(const std::string& path) override;
  Status create_dirs(const std::string& path) override;
  Status remove_file(const std::string& path) override;
  Status rename_file(const std::string& from, const std::string& to) override;
  Result<uint64_t> disk_free_bytes(const std::string& path) override;
  uint64_t now_micros() override;
  Result<std::unique_ptr<WritableFile>> create_new_file(const std::string& path) override;
  Result<std::unique_ptr<RandomAccessFile>> open_random_access(const std::string& path) override;
  Status create_private_dir(const std::string& path) override;
  Status sync_dir(const std::string& path) override;
  Result<std::unique_ptr<FileLock>> lock_file(const std::string& path) override;

 private:
  friend class FaultWritableFile;
  friend class FaultRandomAccessFile;

  struct Flip {
    std::string path_suffix;
    uint64_t offset;
    int bit;
  };

  // Decides how much of an append of `n` bytes may reach the file; sets `fail` to the error that follows.
  size_t admit_append(const std::string& path, size_t n, Status* fail);
  Status before_sync(const std::string& path);
  Status crash_status(const std::string& path, const char* what) const;
  // `data` holds the file's bytes from `offset` on.
  void apply_flips(const std::string& path, uint8_t* data, size_t size, uint64_t offset = 0);
  static Status full_status(const std::string& path, Full kind);

  Env* base_;
  mutable std::mutex mu_;
  std::condition_variable gate_cv_;
  bool crashed_ = false;
  bool held_ = false;
  int blocked_ = 0;
  int appends_ = 0;
  int syncs_ = 0;
  uint64_t bytes_ = 0;
  int fail_nth_ = 0;  // 0 = off
  Full fail_nth_kind_ = Full::kNoSpace;
  bool byte_limit_on_ = false;
  uint64_t byte_limit_ = 0;  // absolute, in bytes_ units
  Full byte_limit_kind_ = Full::kNoSpace;
  bool tear_on_ = false;
  uint64_t tear_at_ = 0;  // absolute
  int failing_syncs_ = 0;
  std::vector<Flip> flips_;
  bool manual_clock_ = false;
  uint64_t clock_now_ = 0;
  uint64_t clock_tick_ = 0;
};

}  // namespace keel::env
