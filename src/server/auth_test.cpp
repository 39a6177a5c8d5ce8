#include "server/auth.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "server/test_server.h"

namespace keel::server {
namespace {

TEST(Auth, SecretEqualIsEqualityOverEveryByte) {
  EXPECT_TRUE(secret_equal("sk-abc123", "sk-abc123"));
  EXPECT_FALSE(secret_equal("sk-abc124", "sk-abc123"));  // the last byte differs
  EXPECT_FALSE(secret_equal("xk-abc123", "sk-abc123"));  // the first
  EXPECT_FALSE(secret_equal("sk-abc12", "sk-abc123"));   // a prefix
  EXPECT_FALSE(secret_equal("sk-abc1234", "sk-abc123"));  // the key plus more
  EXPECT_FALSE(secret_equal("", "sk-abc123"));
  EXPECT_FALSE(secret_equal("sk", ""));
  EXPECT_TRUE(secret_equal("", ""));
  // Bytes equal modulo the key's length are still compared as themselves.
  EXPECT_FALSE(secret_equal("abab", "ab"));
}

std::string temp_file(const std::string& text) {
  char path[] = "/tmp/keel_api_key_XXXXXX";
  const int fd = ::mkstemp(path);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  ::close(fd);
  return path;
}

TEST(Auth, TheKeyComesFromTheFlagTheFileOrTheEnvironment) {
  env::Env& env = *env::Env::posix();
  auto none = resolve_api_key("", "", nullptr, env);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, "");
  EXPECT_EQ(*resolve_api_key("from-flag", "", "from-env", env), "from-flag");
  EXPECT_EQ(*resolve_api_key("", "", "from-env", env), "from-env");

  const std::string file = temp_file("  sk-from-file \nsecond line\n");
  auto from_file = resolve_api_key("", file, "from-env", env);
  ASSERT_TRUE(from_file.ok()) << from_file.status().message();
  EXPECT_EQ(*from_file, "sk-from-file");

  auto both = resolve_api_key("k", file, nullptr, env);
  ASSERT_FALSE(both.ok());
  EXPECT_NE(both.status().message().find("give one or the other"), std::string::npos);
  std::remove(file.c_str());

  const std::string empty = temp_file("\n");
  auto blank = resolve_api_key("", empty, nullptr, env);
  ASSERT_FALSE(blank.ok());
  EXPECT_NE(blank.status().message().find("first line is empty"), std::string::npos) << blank.status().message();
  std::remove(empty.c_str());

  auto missing = resolve_api_key("", "/nonexistent/keel/key", nullptr, env);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("/nonexistent/keel/key"), std::string::npos);
}

TEST(Auth, LoopbackHostsAreRecognised) {
  for (const char* h : {"127.0.0.1", "127.1.2.3", "::1", "localhost"}) EXPECT_TRUE(is_loopback_host(h)) << h;
  for (const char* h : {"0.0.0.0", "::", "192.168.1.10", "10.0.0.1", "example.com"}) {
    EXPECT_FALSE(is_loopback_host(h)) << h;
  }
}

TEST(Auth, BearerAndXApiKeyAreCheckedAgainstTheKey) {
  ServerOptions options;
  options.api_key = "sk-test";
  TestServer s(options);
  auto c = s.client();
  EXPECT_EQ(c.Get("/v1/models", httplib::Headers{{"Authorization", "Bearer sk-test"}})->status, 200);
  EXPECT_EQ(c.Get("/v1/models", httplib::Headers{{"x-api-key", "sk-test"}})->status, 200);
  EXPECT_EQ(c.Get("/v1/models", httplib::Headers{{"Authorization", "Bearer sk-tes"}})->status, 401);
  EXPECT_EQ(c.Get("/v1/models", httplib::Headers{{"Authorization", "sk-test"}})->status, 401);
  EXPECT_EQ(c.Get("/v1/models", httplib::Headers{{"x-api-key", "sk-test2"}})->status, 401);
}

}  // namespace
}  // namespace keel::server
