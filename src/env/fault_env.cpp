#include "env/fault_env.h"

#include <cerrno>
#include <cstring>

namespace keel::env {

// Forwards to the base file, asking the FaultEnv before every append and sync.
class FaultWritableFile final : public WritableFile {
 public:
  FaultWritableFile(FaultEnv* env, std::string path, std::unique_ptr<WritableFile> base)
      : env_(env), path_(std::move(path)), base_(std::move(base)) {}

  Status append(const void* data, size_t n) override {
    Status fail;
    size_t admitted = env_->admit_append(path_, n, &fail);
    if (admitted > 0) KEEL_RETURN_IF_ERROR(base_->append(data, admitted));
    return fail;
  }
  Status sync() override {
    KEEL_RETURN_IF_ERROR(env_->before_sync(path_));
    return base_->sync();
  }
  Status close() override { return base_->close(); }

 private:
  FaultEnv* env_;
  std::string path_;
  std::unique_ptr<WritableFile> base_;
};

// Forwards reads, flipping the programmed bits in what comes back.
class FaultRandomAccessFile final : public RandomAccessFile {
 public:
  FaultRandomAccessFile(FaultEnv* env, std::unique_ptr<RandomAccessFile> base) : env_(env), base_(std::move(base)) {}
  Result<size_t> read_at(uint64_t offset, void* dst, size_t n) const override {
    if (env_->crashed()) return env_->crash_status(path(), "read");
    KEEL_ASSIGN_OR_RETURN(size_t got, base_->read_at(offset, dst, n));
    env_->apply_flips(path(), static_cast<uint8_t*>(dst), got, offset);
    return got;
  }
  Result<uint64_t> size() const override { return base_->size(); }
  const std::string& path() const override { return base_->path(); }

 private:
  FaultEnv* env_;
  std::unique_ptr<RandomAccessFile> base_;
};

namespace {

// A private copy of a file's bytes, so flipped bits never reach the disk or other readers.
class CopiedFile final : public MappedFile {
 public:
  CopiedFile(std::string path, std::string bytes) : path_(std::move(path)), bytes_(std::move(bytes)) {}
  const uint8_t* data() const override { return reinterpret_cast<const uint8_t*>(bytes_.data()); }
  size_t size() const override { return bytes_.size(); }
  const std::string& path() const override { return path_; }
  uint8_t* mutable_data() { return reinterpret_cast<uint8_t*>(bytes_.data()); }

 private:
  std::string path_;
  std::string bytes_;
};

}  // namespace

void FaultEnv::fail_nth_append(int n, Full kind) {
  std::lock_guard<std::mutex> lock(mu_);
  fail_nth_ = n;
  fail_nth_kind_ = kind;
}

void FaultEnv::fail_after_bytes(uint64_t n, Full kind) {
  std::lock_guard<std::mutex> lock(mu_);
  byte_limit_on_ = true;
  byte_limit_ = bytes_ + n;
  byte_limit_kind_ = kind;
}

void FaultEnv::tear_after_bytes(uint64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  tear_on_ = true;
  tear_at_ = bytes_ + n;
}

void FaultEnv::fail_next_syncs(int n) {
  std::lock_guard<std::mutex> lock(mu_);
  failing_syncs_ = n;
}

void FaultEnv::flip_bit_on_read(const std::string& path_suffix, uint64_t offset, int bit) {
  std::lock_guard<std::mutex> lock(mu_);
  flips_.push_back(Flip{path_suffix, offset, bit});
}

void FaultEnv::hold_appends() {
  std::lock_guard<std::mutex> lock(mu_);
  held_ = true;
}

void FaultEnv::release_appends() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    held_ = false;
  }
  gate_cv_.notify_all();
}

void FaultEnv::clear_faults() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    fail_nth_ = 0;
    byte_limit_on_ = false;
    tear_on_ = false;
    failing_syncs_ = 0;
    flips_.clear();
    held_ = false;
  }
  gate_cv_.notify_all();
}

bool FaultEnv::crashed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return crashed_;
}
uint64_t FaultEnv::bytes_appended() const {
  std::lock_guard<std::mutex> lock(mu_);
  return bytes_;
}
int FaultEnv::appends() const {
  std::lock_guard<std::mutex> lock(mu_);
  return appends_;
}
int FaultEnv::syncs() const {
  std::lock_guard<std::mutex> lock(mu_);
  return syncs_;
}
int FaultEnv::blocked_appends() const {
  std::lock_guard<std::mutex> lock(mu_);
  return blocked_;
}

Status FaultEnv::full_status(const std::string& path, Full kind) {
  int err = kind == Full::kNoSpace ? ENOSPC : EDQUOT;
  return resource_exhausted("{}: {} (while trying to write)", path, std::strerror(err));
}

Status FaultEnv::crash_status(const std::string& path, const char* what) const {
  return io_error("{}: simulated crash (while trying to {})", path, what);
}

size_t FaultEnv::admit_append(const std::string& path, size_t n, Status* fail) {
  std::unique_lock<std::mutex> lock(mu_);
  if (held_) {
    blocked_++;
    gate_cv_.wait(lock, [&] { return !held_; });
    blocked_--;
  }
  if (crashed_) {
    *fail = crash_status(path, "write");
    return 0;
  }
  appends_++;
  if (fail_nth_ > 0 && --fail_nth_ == 0) {
    *fail = full_status(path, fail_nth_kind_);
    return 0;
  }
  if (tear_on_ && bytes_ + n > tear_at_) {
    size_t admitted = static_cast<size_t>(tear_at_ - bytes_);
    bytes_ += admitted;
    crashed_ = true;
    *fail = crash_status(path, "write");
    return admitted;
  }
  if (byte_limit_on_ && bytes_ + n > byte_limit_) {
    size_t admitted = bytes_ >= byte_limit_ ? 0 : static_cast<size_t>(byte_limit_ - bytes_);
    bytes_ += admitted;
    *fail = full_status(path, byte_limit_kind_);
    return admitted;
  }
  bytes_ += n;
  return n;
}

Status FaultEnv::before_sync(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  if (crashed_) return crash_status(path, "fsync");
  syncs_++;
  if (failing_syncs_ > 0) {
    failing_syncs_--;
    return io_error("{}: {} (while trying to fsync)", path, std::strerror(EIO));
  }
  return Status();
}

void FaultEnv::apply_flips(const std::string& path, uint8_t* data, size_t size, uint64_t offset) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const Flip& f : flips_) {
    if (path.ends_with(f.path_suffix) && f.offset >= offset && f.offset - offset < size)
      data[f.offset - offset] ^= static_cast<uint8_t>(1u << f.bit);
  }
}

#define KEEL_FAULT_CRASH_CHECK(path, what)              \
  do {                                                  \
    std::lock_guard<std::mutex> lock(mu_);              \
    if (crashed_) return crash_status((path), (what));  \
  } while (0)

Result<std::string> FaultEnv::read_file(const std::string& path) {
  KEEL_FAULT_CRASH_CHECK(path, "read");
  KEEL_ASSIGN_OR_RETURN(std::string bytes, base_->read_file(path));
  apply_flips(path, reinterpret_cast<uint8_t*>(bytes.data()), bytes.size());
  return bytes;
}

Result<std::unique_ptr<MappedFile>> FaultEnv::map_file(const std::string& path) {
  KEEL_FAULT_CRASH_CHECK(path, "map");
  bool any_flip = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const Flip& f : flips_) any_flip |= path.ends_with(f.path_suffix);
  }
  if (!any_flip) return base_->map_file(path);
  KEEL_ASSIGN_OR_RETURN(std::string bytes, base_->read_file(path));
  auto copy = std::make_unique<CopiedFile>(path, std::move(bytes));
  apply_flips(path, copy->mutable_data(), copy->size());
  return std::unique_ptr<MappedFile>(std::move(copy));
}

Result<std::unique_ptr<WritableFile>> FaultEnv::new_writable_file(const std::string& path, bool truncate) {
  KEEL_FAULT_CRASH_CHECK(path, "create");
  KEEL_ASSIGN_OR_RETURN(auto base, base_->new_writable_file(path, truncate));
  return std::unique_ptr<WritableFile>(new FaultWritableFile(this, path, std::move(base)));
}

Status FaultEnv::write_file_atomic(const std::string& path, const std::string& contents) {
  std::string tmp = path + ".tmp";
  KEEL_ASSIGN_OR_RETURN(auto file, new_writable_file(tmp, true));
  KEEL_RETURN_IF_ERROR(file->append(contents.data(), contents.size()));
  KEEL_RETURN_IF_ERROR(file->sync());
  KEEL_RETURN_IF_ERROR(file->close());
  return rename_file(tmp, path);
}

bool FaultEnv::file_exists(const std::string& path) {
  if (crashed()) return false;
  return base_->file_exists(path);
}

bool FaultEnv::is_directory(const std::string& path) {
  if (crashed()) return false;
  return base_->is_directory(path);
}

Result<uint64_t> FaultEnv::file_size(const std::string& path) {
  KEEL_FAULT_CRASH_CHECK(path, "stat");
  return base_->file_size(path);
}

Result<std::vector<std::string>> FaultEnv::list_dir(const std::string& path) {
  KEEL_FAULT_CRASH_CHECK(path, "list directory");
  return base_->list_dir(path);
}

Status FaultEnv::create_dirs(const std::string& path) {
  KEEL_FAULT_CRASH_CHECK(path, "create directory");
  return base_->create_dirs(path);
}

Status FaultEnv::remove_file(const std::string& path) {
  KEEL_FAULT_CRASH_CHECK(path, "remove");
  return base_->remove_file(path);
}

Status FaultEnv::rename_file(const std::string& from, const std::string& to) {
  KEEL_FAULT_CRASH_CHECK(from, "rename");
  return base_->rename_file(from, to);
}

Result<uint64_t> FaultEnv::disk_free_bytes(const std::string& path) {
  KEEL_FAULT_CRASH_CHECK(path, "statvfs");
  return base_->disk_free_bytes(path);
}

void FaultEnv::use_manual_clock(uint64_t start, uint64_t tick) {
  std::lock_guard lock(mu_);
  manual_clock_ = true;
  clock_now_ = start;
  clock_tick_ = tick;
}

uint64_t FaultEnv::now_micros() {
  {
    std::lock_guard lock(mu_);
    if (manual_clock_) {
      const uint64_t now = clock_now_;
      clock_now_ += clock_tick_;
      return now;
    }
  }
  return base_->now_micros();
}

Result<std::unique_ptr<WritableFile>> FaultEnv::create_new_file(const std::string& path) {
  KEEL_FAULT_CRASH_CHECK(path, "create");
  KEEL_ASSIGN_OR_RETURN(auto base, base_->create_new_file(path));
  return std::unique_ptr<WritableFile>(new FaultWritableFile(this, path, std::move(base)));
}

Result<std::unique_ptr<RandomAccessFile>> FaultEnv::open_random_access(const std::string& path) {
  KEEL_FAULT_CRASH_CHECK(path, "open");
  KEEL_ASSIGN_OR_RETURN(auto base, base_->open_random_access(path));
  return std::unique_ptr<RandomAccessFile>(new FaultRandomAccessFile(this, std::move(base)));
}

Status FaultEnv::create_private_dir(const std::string& path) {
  KEEL_FAULT_CRASH_CHECK(path, "create directory");
  return base_->create_private_dir(path);
}

Status FaultEnv::sync_dir(const std::string& path) {
  KEEL_FAULT_CRASH_CHECK(path, "fsync directory");
  return base_->sync_dir(path);
}

Result<std::unique_ptr<FileLock>> FaultEnv::lock_file(const std::string& path) {
  KEEL_FAULT_CRASH_CHECK(path, "lock");
  return base_->lock_file(path);
}

}  // namespace keel::env
