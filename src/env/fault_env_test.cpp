#include "env/fault_env.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>

namespace keel::env {
namespace {

// Fresh directories under one per-process root, removed when the test program exits.
std::string temp_dir() {
  struct Root {
    std::string path;
    int next = 0;
    Root() {
      char tmpl[] = "/tmp/keel_fault_env_XXXXXX";
      path = mkdtemp(tmpl);
    }
    ~Root() { std::filesystem::remove_all(path); }
  };
  static Root root;
  std::string dir = root.path + "/" + std::to_string(root.next++);
  std::filesystem::create_directory(dir);
  return dir;
}

std::string on_disk(const std::string& path) {
  auto r = Env::posix()->read_file(path);
  return r.ok() ? *r : std::string("<missing>");
}

TEST(FaultEnv, PassesThroughWhenNoFaultIsProgrammed) {
  FaultEnv env(Env::posix());
  std::string path = join_path(temp_dir(), "f");
  auto file = env.new_writable_file(path, true);
  ASSERT_TRUE(file.ok());
  ASSERT_TRUE((*file)->append("hello ", 6).ok());
  ASSERT_TRUE((*file)->append("world", 5).ok());
  ASSERT_TRUE((*file)->sync().ok());
  ASSERT_TRUE((*file)->close().ok());
  EXPECT_EQ(on_disk(path), "hello world");
  EXPECT_EQ(env.appends(), 2);
  EXPECT_EQ(env.bytes_appended(), 11u);
  EXPECT_EQ(env.syncs(), 1);
}

TEST(FaultEnv, NthAppendFailsWithNoSpaceAndWritesNothing) {
  FaultEnv env(Env::posix());
  std::string path = join_path(temp_dir(), "f");
  auto file = env.new_writable_file(path, true);
  ASSERT_TRUE(file.ok());
  env.fail_nth_append(2);
  ASSERT_TRUE((*file)->append("aa", 2).ok());
  Status s = (*file)->append("bb", 2);
  // As PosixEnv reports ENOSPC: the code says "disk full", the message says which errno.
  EXPECT_EQ(s.code(), Code::kResourceExhausted);
  EXPECT_TRUE(is_disk_full(s));
  EXPECT_NE(s.message().find("No space left on device"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(path), std::string::npos);
  ASSERT_TRUE((*file)->append("cc", 2).ok());
  EXPECT_EQ(on_disk(path), "aacc");
}

TEST(FaultEnv, QuotaFailureReadsAsEdquot) {
  FaultEnv env(Env::posix());
  auto file = env.new_writable_file(join_path(temp_dir(), "f"), true);
  ASSERT_TRUE(file.ok());
  env.fail_nth_append(1, FaultEnv::Full::kQuota);
  Status s = (*file)->append("x", 1);
  EXPECT_NE(s.message().find("Disk quota exceeded"), std::string::npos) << s.message();
}

TEST(FaultEnv, ByteBudgetWritesWhatFitsThenRefusesUntilCleared) {
  FaultEnv env(Env::posix());
  std::string path = join_path(temp_dir(), "f");
  auto file = env.new_writable_file(path, true);
  ASSERT_TRUE(file.ok());
  env.fail_after_bytes(5);
  ASSERT_TRUE((*file)->append("abc", 3).ok());
  EXPECT_FALSE((*file)->append("defg", 4).ok());
  EXPECT_FALSE((*file)->append("h", 1).ok());
  EXPECT_EQ(on_disk(path), "abcde");
  env.clear_faults();
  ASSERT_TRUE((*file)->append("i", 1).ok());
  EXPECT_EQ(on_disk(path), "abcdei");
}

TEST(FaultEnv, TornWriteKeepsAPrefixThenEverythingFails) {
  FaultEnv env(Env::posix());
  std::string dir = temp_dir();
  std::string path = join_path(dir, "f");
  auto file = env.new_writable_file(path, true);
  ASSERT_TRUE(file.ok());
  ASSERT_TRUE((*file)->append("0123", 4).ok());
  env.tear_after_bytes(3);
  EXPECT_FALSE((*file)->append("456789", 6).ok());
  EXPECT_TRUE(env.crashed());
  EXPECT_EQ(on_disk(path), "0123456");
  EXPECT_FALSE((*file)->append("x", 1).ok());
  EXPECT_FALSE((*file)->sync().ok());
  EXPECT_FALSE(env.new_writable_file(join_path(dir, "g"), true).ok());
  EXPECT_FALSE(env.read_file(path).ok());
  EXPECT_FALSE(env.list_dir(dir).ok());
  EXPECT_FALSE(env.file_exists(path));
  env.clear_faults();
  EXPECT_TRUE(env.crashed());
  EXPECT_EQ(on_disk(path), "0123456");
}

TEST(FaultEnv, SyncFailsTheProgrammedNumberOfTimes) {
  FaultEnv env(Env::posix());
  auto file = env.new_writable_file(join_path(temp_dir(), "f"), true);
  ASSERT_TRUE(file.ok());
  env.fail_next_syncs(2);
  EXPECT_FALSE((*file)->sync().ok());
  EXPECT_FALSE((*file)->sync().ok());
  EXPECT_TRUE((*file)->sync().ok());
}

TEST(FaultEnv, BitFlipOnReadLeavesTheDiskUntouched) {
  FaultEnv env(Env::posix());
  std::string path = join_path(temp_dir(), "data.bin");
  ASSERT_TRUE(Env::posix()->write_file_atomic(path, "AAAA").ok());
  env.flip_bit_on_read("data.bin", 2, 0);
  auto read = env.read_file(path);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(*read, "AA@A");
  auto mapped = env.map_file(path);
  ASSERT_TRUE(mapped.ok());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>((*mapped)->data()), (*mapped)->size()), "AA@A");
  EXPECT_EQ(on_disk(path), "AAAA");
}

TEST(FaultEnv, HeldAppendsBlockUntilReleased) {
  FaultEnv env(Env::posix());
  std::string path = join_path(temp_dir(), "f");
  auto file = env.new_writable_file(path, true);
  ASSERT_TRUE(file.ok());
  env.hold_appends();
  std::thread writer([&] { EXPECT_TRUE((*file)->append("z", 1).ok()); });
  while (env.blocked_appends() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(on_disk(path), "");
  env.release_appends();
  writer.join();
  EXPECT_EQ(on_disk(path), "z");
}

}  // namespace
}  // namespace keel::env
