// `keel serve` (the demo model) as an operator runs it and as a careless client uses it: the API key from a file
// or the environment, the warning for an open address without one, the HTTP line of the memory plan held under
// a 25 MB /tokenize, and abandoned completions that stop and give their KV blocks back.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "serve_process.h"

namespace {

using keel::test::ServeProcess;
using namespace std::chrono_literals;

const std::vector<std::string> kSmall = {"--port", "0", "--backend", "cpu", "--max-num-seqs", "4"};

std::vector<std::string> with(std::vector<std::string> args, std::vector<std::string> more) {
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

std::string log_path(const char* name) { return "/tmp/keel_serve_http_" + std::string(name) + ".log"; }

// A gauge or counter from /metrics (the sum over its label sets); -1 when absent.
double metric(int port, const std::string& name) {
  httplib::Client c("127.0.0.1", port);
  auto res = c.Get("/metrics");
  if (!res || res->status != 200) return -1;
  std::istringstream in(res->body);
  double total = -1;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(name + " ", 0) == 0 || line.rfind(name + "{", 0) == 0) {
      total = std::max(total, 0.0) + std::stod(line.substr(line.rfind(' ') + 1));
    }
  }
  return total;
}

// kB of a /proc/PID/status field (VmRSS, VmHWM).
long proc_status_kb(pid_t pid, const std::string& field) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(f, line);) {
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  }
  return -1;
}

TEST(ServeHttp, TheApiKeyFromAFileOrTheEnvironmentIsRequiredAndStaysOutOfTheCommandLine) {
  const std::string key = "sk-keel-test-3f9a";
  const std::string key_file = "/tmp/keel_serve_http_key";
  std::ofstream(key_file) << key << "\n";
  for (int from_env = 0; from_env < 2; from_env++) {
    ServeProcess serve(from_env ? kSmall : with(kSmall, {"--api-key-file", key_file}), log_path("key"),
                       from_env ? std::vector<std::pair<std::string, std::string>>{{"KEEL_API_KEY", key}}
                                : std::vector<std::pair<std::string, std::string>>{});
    const int port = serve.wait_listening();
    ASSERT_GT(port, 0) << serve.log_text();
    httplib::Client c("127.0.0.1", port);
    EXPECT_EQ(c.Get("/v1/models")->status, 401) << from_env;
    EXPECT_EQ(c.Get("/v1/models", httplib::Headers{{"Authorization", "Bearer " + key}})->status, 200) << from_env;
    EXPECT_EQ(c.Get("/v1/models", httplib::Headers{{"x-api-key", key}})->status, 200) << from_env;
    EXPECT_EQ(c.Get("/health")->status, 200);
    std::ifstream cmdline("/proc/" + std::to_string(serve.pid()) + "/cmdline");
    const std::string args(std::istreambuf_iterator<char>(cmdline), {});
    EXPECT_EQ(args.find(key), std::string::npos) << "the key is visible in ps";
    EXPECT_EQ(serve.terminate(), 0) << serve.log_text();
  }
  std::remove(key_file.c_str());
}

TEST(ServeHttp, BindingAnOpenAddressWithoutAKeyWarns) {
  {
    ServeProcess serve(with(kSmall, {"--host", "0.0.0.0"}), log_path("open"));
    ASSERT_GT(serve.wait_listening(), 0) << serve.log_text();
    EXPECT_NE(serve.log_text().find("keel: warning: binding 0.0.0.0"), std::string::npos) << serve.log_text();
    EXPECT_EQ(serve.terminate(), 0);
  }
  {
    ServeProcess serve(with(kSmall, {"--host", "0.0.0.0"}), log_path("open_key"), {{"KEEL_API_KEY", "k"}});
    ASSERT_GT(serve.wait_listening(), 0) << serve.log_text();
    EXPECT_EQ(serve.log_text().find("without an API key"), std::string::npos) << serve.log_text();
    EXPECT_EQ(serve.terminate(), 0);
  }
  ServeProcess loopback(kSmall, log_path("loopback"));
  ASSERT_GT(loopback.wait_listening(), 0) << loopback.log_text();
  const std::string log = loopback.log_text();
  EXPECT_EQ(log.find("without an API key"), std::string::npos) << log;
  EXPECT_NE(log.find("keel: open files limit "), std::string::npos) << log;
  EXPECT_EQ(loopback.terminate(), 0);
}

// The plan's http line is a bound the server keeps: a 25 MB /tokenize (within the default 32 MB of bodies in
// flight) raises the peak RSS by less than it.
TEST(ServeHttp, A25MBTokenizeStaysWithinThePlansHttpLine) {
  ServeProcess serve(kSmall, log_path("tokenize"));
  const int port = serve.wait_listening();
  ASSERT_GT(port, 0) << serve.log_text();
  std::smatch m;
  const std::string log = serve.log_text();
  ASSERT_TRUE(std::regex_search(log, m, std::regex(R"(\n\s+http\s+\S+\s+([0-9.]+) MiB)"))) << log;
  const double http_mib = std::stod(m[1]);
  std::ofstream(std::string("/proc/") + std::to_string(serve.pid()) + "/clear_refs") << "5";  // resets VmHWM
  const long before_kb = proc_status_kb(serve.pid(), "VmRSS");
  ASSERT_GT(before_kb, 0);
  std::string text;
  const std::string words[] = {"the ", "keel ", "of ", "a ", "ship ", "runs ", "along ", "its ", "bottom. "};
  for (size_t i = 0; text.size() < 25u << 20; i++) text += words[(i * 7 + i / 5) % 9];
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(300, 0);
  auto res = c.Post("/tokenize", nlohmann::json{{"prompt", text}}.dump(), "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body.substr(0, 300);
  EXPECT_GT(nlohmann::json::parse(res->body)["count"].get<int64_t>(), 1000000);
  const long peak_kb = proc_status_kb(serve.pid(), "VmHWM");
  EXPECT_LT((peak_kb - before_kb) / 1024.0, http_mib) << "RSS " << before_kb << " kB -> peak " << peak_kb << " kB";
  EXPECT_EQ(serve.terminate(), 0) << serve.log_text();
}

// Three non-streaming requests for 1,900 tokens each whose clients hang up: generation stops at once and every
// KV block returns (on Debian's httplib they ran to their last token).
TEST(ServeHttp, AbandonedCompletionsStopEarlyAndReturnTheirBlocks) {
  ServeProcess serve(kSmall, log_path("abandoned"));
  const int port = serve.wait_listening();
  ASSERT_GT(port, 0) << serve.log_text();
  const std::string body =
      nlohmann::json{{"prompt", "Once upon a time"}, {"max_tokens", 1900}, {"ignore_eos", true}}.dump();
  std::vector<int> fds;
  for (int i = 0; i < 3; i++) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    const std::string request = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    ASSERT_EQ(::send(fd, request.data(), request.size(), MSG_NOSIGNAL), static_cast<ssize_t>(request.size()));
    fds.push_back(fd);
  }
  auto deadline = std::chrono::steady_clock::now() + 60s;
  while (metric(port, "keel_generation_tokens_total") < 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_GE(metric(port, "keel_kv_blocks_used"), 3);
  for (int fd : fds) ::close(fd);
  deadline = std::chrono::steady_clock::now() + 10s;
  while ((metric(port, "keel_requests_running") > 0 || metric(port, "keel_kv_blocks_used") > 0) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(metric(port, "keel_requests_running"), 0);
  EXPECT_EQ(metric(port, "keel_kv_blocks_used"), 0);
  const double generated = metric(port, "keel_generation_tokens_total");
  EXPECT_LT(generated, 3 * 1900 / 2) << "the abandoned requests ran on";
  EXPECT_EQ(serve.terminate(), 0) << serve.log_text();
}

}  // namespace

TEST(ServeHttp, OutputParsersComeFromTheChatTemplateOrTheFlags) {
  {
    // The demo model's template is ChatML with no tool syntax and no <think>: the defaults.
    ServeProcess serve(kSmall, log_path("parsers_auto"));
    ASSERT_GT(serve.wait_listening(), 0) << serve.log_text();
    EXPECT_NE(serve.log_text().find("tool calls: hermes, reasoning: none (from the chat template)"), std::string::npos)
        << serve.log_text();
    EXPECT_EQ(serve.terminate(), 0);
  }
  {
    ServeProcess serve(with(kSmall, {"--tool-call-parser", "qwen3_coder", "--reasoning-parser", "think"}),
                       log_path("parsers_flag"));
    ASSERT_GT(serve.wait_listening(), 0) << serve.log_text();
    EXPECT_NE(serve.log_text().find("tool calls: qwen3_coder, reasoning: think"), std::string::npos)
        << serve.log_text();
    EXPECT_EQ(serve.log_text().find("from the chat template"), std::string::npos) << serve.log_text();
    EXPECT_EQ(serve.terminate(), 0);
  }
  ServeProcess bad(with(kSmall, {"--tool-call-parser", "hermes2"}), log_path("parsers_bad"));
  EXPECT_EQ(bad.wait_listening(), 0);
  EXPECT_NE(bad.log_text().find("--tool-call-parser hermes2: unknown parser (expected auto or one of none, hermes, "
                                "qwen3_coder, llama3_json, mistral, gemma3)"),
            std::string::npos)
      << bad.log_text();
}
