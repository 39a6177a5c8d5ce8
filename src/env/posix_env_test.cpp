#include <gtest/gtest.h>

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
