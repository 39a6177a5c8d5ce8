#include "server/auth.h"

#include <arpa/inet.h>

namespace keel::server {

bool secret_equal(std::string_view given, std::string_view secret) {
  // An empty secret compares against one zero byte, so the loop body stays the same.
  static constexpr char kZero = 0;
  const char* s = secret.empty() ? &kZero : secret.data();
  const size_t n = secret.empty() ? 1 : secret.size();
  volatile unsigned char diff = given.size() != secret.size() ? 1 : 0;
  for (size_t i = 0; i < given.size(); ++i) {
    diff = diff | static_cast<unsigned char>(given[i] ^ s[i % n]);
  }
  return diff == 0;
}

Result<std::string> resolve_api_key(const std::string& flag, const std::string& file, const char* environment,
                                    env::Env& env) {
  if (!flag.empty() && !file.empty()) return invalid_argument("--api-key and --api-key-file: give one or the other");
  if (!flag.empty()) return flag;
  if (!file.empty()) {
    KEEL_ASSIGN_OR_RETURN(std::string text, env.read_file(file));
    std::string_view key(text);
    key = key.substr(0, key.find('\n'));
    while (!key.empty() && std::isspace(static_cast<unsigned char>(key.front()))) key.remove_prefix(1);
    while (!key.empty() && std::isspace(static_cast<unsigned char>(key.back()))) key.remove_suffix(1);
    if (key.empty()) return invalid_argument("--api-key-file {}: the first line is empty (expected the key)", file);
    return std::string(key);
  }
  if (environment != nullptr) return std::string(environment);
  return std::string();
}

bool is_loopback_host(const std::string& host) {
  if (host == "localhost") return true;
  in_addr v4{};
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (::inet_pton(AF_INET6, host.c_str(), &v6) == 1) return IN6_IS_ADDR_LOOPBACK(&v6);
  return false;
}

}  // namespace keel::server
