#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include "env/env.h"

namespace keel::env {

TEST(PosixEnv, WritesAtomicallyThenMapsTheSameBytes) {
  Env* env = Env::posix();
  char tmpl[] = "/tmp/keel_env_XXXXXX";
  std::string dir = mkdtemp(tmpl);
  std::string path = join_path(dir, "a/b/file.bin");
  ASSERT_TRUE(env->create_dirs(join_path(dir, "a/b")).ok());
  ASSERT_TRUE(env->write_file_atomic(path, "hello").ok());
  auto mapped = env->map_file(path);
  ASSERT_TRUE(mapped.ok());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>((*mapped)->data()), (*mapped)->size()), "hello");
  EXPECT_FALSE(env->file_exists(path + ".tmp"));
}

TEST(PosixEnv, MissingFileIsNotFoundNamingThePath) {
  auto r = Env::posix()->read_file("/nonexistent/keel/x.json");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kNotFound);
  EXPECT_NE(r.status().message().find("/nonexistent/keel/x.json"), std::string::npos);
}

}  // namespace keel::env

namespace keel::env {

namespace {

std::string temp_dir() {
  char tmpl[] = "/tmp/keel_env_XXXXXX";
  return mkdtemp(tmpl);
}

mode_t mode_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st.st_mode & 0777;
}

}  // namespace

TEST(PosixEnv, NewFilesAreExclusivePrivateAndNeverFollowALink) {
  Env* env = Env::posix();
  const std::string dir = temp_dir();
  const std::string path = join_path(dir, "seg");
  auto file = env->create_new_file(path);
  ASSERT_TRUE(file.ok()) << file.status().message();
  EXPECT_EQ(mode_of(path), 0600u);
  // Exists already: refused, never truncated or reused.
  ASSERT_TRUE((*file)->append("abc", 3).ok());
  EXPECT_FALSE(env->create_new_file(path).ok());
  EXPECT_EQ(*env->file_size(path), 3u);
  // A symlink planted under a new file's name is not followed (its target is not created or written).
  const std::string target = join_path(dir, "target");
  ASSERT_EQ(::symlink(target.c_str(), join_path(dir, "link").c_str()), 0);
  EXPECT_FALSE(env->create_new_file(join_path(dir, "link")).ok());
  EXPECT_FALSE(env->file_exists(target));
  // ... nor is one opened for reading.
  ASSERT_TRUE(env->write_file_atomic(target, "secret").ok());
  EXPECT_FALSE(env->open_random_access(join_path(dir, "link")).ok());
}

TEST(PosixEnv, PrivateDirectoryIsCreated0700WithItsParents) {
  Env* env = Env::posix();
  const std::string dir = join_path(temp_dir(), "a/b/cache");
  ASSERT_TRUE(env->create_private_dir(dir).ok());
  EXPECT_TRUE(env->is_directory(dir));
  EXPECT_EQ(mode_of(dir), 0700u);
  EXPECT_TRUE(env->create_private_dir(dir).ok());  // already there: fine
}

TEST(PosixEnv, ReadAtPastTheEndOfATruncatedFileReadsShortInsteadOfFaulting) {
  Env* env = Env::posix();
  const std::string path = join_path(temp_dir(), "f");
  ASSERT_TRUE(env->write_file_atomic(path, std::string(8192, 'x')).ok());
  auto file = env->open_random_access(path);
  ASSERT_TRUE(file.ok());
  ASSERT_EQ(::truncate(path.c_str(), 100), 0);
  char buf[4096];
  auto got = (*file)->read_at(0, buf, sizeof(buf));
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, 100u);
  EXPECT_EQ(*(*file)->read_at(4096, buf, sizeof(buf)), 0u);
  EXPECT_EQ(*(*file)->size(), 100u);
}

TEST(PosixEnv, SecondLockOnAFileIsRefusedNamingTheHoldersPid) {
  Env* env = Env::posix();
  const std::string path = join_path(temp_dir(), "keel.lock");
  auto first = env->lock_file(path);
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_EQ(mode_of(path), 0600u);
  auto second = env->lock_file(path);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("held by process " + std::to_string(::getpid())), std::string::npos)
      << second.status().message();
  first->reset();  // released: the next one gets it
  EXPECT_TRUE(env->lock_file(path).ok());
}

TEST(PosixEnv, FullDiskErrnosAreResourceExhausted) {
  // /dev/full answers every write with ENOSPC.
  auto file = Env::posix()->new_writable_file("/dev/full", false);
  ASSERT_TRUE(file.ok());
  Status s = (*file)->append("x", 1);
  if (s.ok()) s = (*file)->sync();
  EXPECT_TRUE(is_disk_full(s)) << s.message();
  EXPECT_FALSE(is_disk_full(io_error("x: Input/output error")));
}

}  // namespace keel::env
