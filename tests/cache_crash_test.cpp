// The tiered prefix cache under a real crash: `keel serve` (the demo model, CPU backend, a small host tier so
// that blocks spill to the SSD tier) is killed with SIGKILL at a random moment while several clients send long
// prompts that share prefixes, and restarted on the same directory, round after round. After every round
// `keel cache verify` must pass (a torn tail is what a kill leaves and is skipped; anything else is damage).
// At the end a server restarted on that directory serves a fixed set of prompts partly from the SSD
// (usage.prompt_tokens_details.cached_tokens > 0 on a cold device and host tier) with exactly the greedy text
// a server on an empty directory computes.
//
// The seed is printed; KEEL_CRASH_SEED=N repeats a run's prompts and kill moments.
#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "keel_cli.h"
#include "serve_process.h"

namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr int kRounds = 8;
constexpr int kClients = 3;
constexpr int kFamilies = 3;        // shared prefixes
constexpr int kPrefixTokens = 128;  // 8 blocks of 16
constexpr int kMaxTokens = 8;

std::string temp_dir(const char* what) {
  std::string tmpl = (std::filesystem::temp_directory_path() / (std::string("keel_") + what + "_XXXXXX")).string();
  EXPECT_NE(mkdtemp(tmpl.data()), nullptr);
  return tmpl;
}

// One `keel serve` process on the SSD cache directory. A pool of 2 x 320 tokens (40 blocks) and 5 host blocks
// (96 KiB each): every few prompts push blocks down to the SSD.
class ServeProcess : public keel::test::ServeProcess {
 public:
  ServeProcess(const std::string& cache_dir, const std::string& log)
      : keel::test::ServeProcess({"--port", "0", "--backend", "cpu", "--max-num-seqs", "2", "--max-model-len", "320",
                                  "--hot-cache-max-size", "512KB", "--ssd-cache-dir", cache_dir,
                                  "--ssd-cache-max-size", "256MB"},
                                 log) {}
};

struct Completion {
  bool ok = false;
  std::string text;
  int cached_tokens = -1;
  std::string error;
};

Completion complete(int port, const std::vector<int>& prompt) {
  httplib::Client c("127.0.0.1", port);
  c.set_connection_timeout(5);
  c.set_read_timeout(60);
  json body{{"prompt", prompt}, {"max_tokens", kMaxTokens}, {"temperature", 0}, {"ignore_eos", true}};
  Completion out;
  auto res = c.Post("/v1/completions", body.dump(), "application/json");
  if (!res) {
    out.error = httplib::to_string(res.error());
    return out;
  }
  if (res->status != 200) {
    out.error = "HTTP " + std::to_string(res->status) + ": " + res->body;
    return out;
  }
  json j = json::parse(res->body);
  out.ok = true;
  out.text = j["choices"][0]["text"];
  out.cached_tokens = j["usage"]["prompt_tokens_details"]["cached_tokens"];
  return out;
}

// Prompts are token ids: a family's shared prefix, then a suffix.
struct Prompts {
  std::vector<std::vector<int>> prefixes;
  std::vector<std::vector<int>> fixed;  // compared warm against cold at the end

  explicit Prompts(uint64_t seed) {
    std::mt19937_64 rng(seed);
    for (int f = 0; f < kFamilies; f++) prefixes.push_back(tokens(rng, kPrefixTokens));
    for (int f = 0; f < kFamilies; f++)
      for (int k = 0; k < 2; k++) fixed.push_back(with_suffix(f, tokens(rng, 60 + 20 * k + f)));
  }
  static std::vector<int> tokens(std::mt19937_64& rng, int n) {
    std::vector<int> t(n);
    for (int& x : t) x = 3 + static_cast<int>(rng() % 4000);
    return t;
  }
  std::vector<int> with_suffix(int family, const std::vector<int>& suffix) const {
    std::vector<int> p = prefixes[family];
    p.insert(p.end(), suffix.begin(), suffix.end());
    return p;
  }
  // Load: a fixed prompt a third of the time, else a family prefix and a fresh suffix of 32 to 160 tokens.
  std::vector<int> random(std::mt19937_64& rng) const {
    if (rng() % 3 == 0) return fixed[rng() % fixed.size()];
    const int family = static_cast<int>(rng() % kFamilies);
    return with_suffix(family, tokens(rng, 32 + static_cast<int>(rng() % 129)));
  }
};

// Clients send prompts until told to stop (the server is gone by then), counting completions.
void run_clients(int port, const Prompts& prompts, uint64_t seed, std::atomic<bool>& stop,
                 std::atomic<int>& completed) {
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; c++) {
    clients.emplace_back([&, c] {
      std::mt19937_64 rng(seed * 131 + c);
      while (!stop) {
        if (complete(port, prompts.random(rng)).ok) completed++;
      }
    });
  }
  for (auto& t : clients) t.join();
}

keel::test::CliRun verify(const std::string& dir) {
  return keel::test::run_keel("cache verify --ssd-cache-dir " + dir);
}

std::string last_line(const std::string& s) {
  std::string t = s;
  while (!t.empty() && t.back() == '\n') t.pop_back();
  return t.substr(t.rfind('\n') == std::string::npos ? 0 : t.rfind('\n') + 1);
}

uint64_t metric(const std::string& text, const std::string& name) {
  std::smatch m;
  if (!std::regex_search(text, m, std::regex("\n" + name + " ([0-9]+)"))) return 0;
  return std::stoull(m[1]);
}

}  // namespace

TEST(CacheCrash, ServeKilledUnderLoadLeavesAVerifiedCacheThatServesColdOutputs) {
  uint64_t seed = std::random_device{}();
  if (const char* s = std::getenv("KEEL_CRASH_SEED")) seed = std::strtoull(s, nullptr, 10);
  std::printf("[ crash    ] seed %llu (KEEL_CRASH_SEED=%llu repeats it)\n", static_cast<unsigned long long>(seed),
              static_cast<unsigned long long>(seed));
  std::fflush(stdout);
  std::mt19937_64 rng(seed);
  const Prompts prompts(seed);
  const std::string dir = temp_dir("crash_ssd");
  const std::string log = dir + ".log";

  for (int round = 0; round < kRounds; round++) {
    ServeProcess serve(dir, log);
    const int port = serve.wait_listening();
    ASSERT_GT(port, 0) << "round " << round << ": keel serve did not start:\n" << serve.log_text();
    std::atomic<bool> stop{false};
    std::atomic<int> completed{0};
    std::thread load([&] { run_clients(port, prompts, seed + round, stop, completed); });
    // After a few completions (by then blocks are spilling to the SSD) and a random moment more: inside a
    // prefill, an eviction or a write.
    const int wait_for = 2 + static_cast<int>(rng() % 7);
    const auto start = std::chrono::steady_clock::now();
    while (completed < wait_for && std::chrono::steady_clock::now() - start < 15s) std::this_thread::sleep_for(5ms);
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 400));
    const auto kill_after =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
    serve.kill9();
    stop = true;
    load.join();
    keel::test::CliRun v = verify(dir);
    std::printf("[ crash    ] round %d: killed after %lld ms, %d completions; %s\n", round,
                static_cast<long long>(kill_after.count()), completed.load(), last_line(v.out).c_str());
    std::fflush(stdout);
    ASSERT_EQ(v.exit_code, 0) << "round " << round << " (seed " << seed << "):\n" << v.out << v.err;
  }

  // A last run that ends cleanly: the fixed prompts, then enough others to push their blocks out of the device
  // pool (40 blocks) and the host tier (5) down to the SSD, then SIGTERM writes the queue and the checkpoint.
  {
    ServeProcess serve(dir, log);
    const int port = serve.wait_listening();
    ASSERT_GT(port, 0) << serve.log_text();
    for (const auto& p : prompts.fixed) {
      Completion c = complete(port, p);
      ASSERT_TRUE(c.ok) << c.error;
    }
    std::mt19937_64 filler(seed ^ 0x5eed);
    for (int i = 0; i < 6; i++) {
      Completion c = complete(port, Prompts::tokens(filler, 300));
      ASSERT_TRUE(c.ok) << c.error;
    }
    ASSERT_EQ(serve.terminate(), 0) << serve.log_text();
    // The write queue is in the memory plan, reserved through the governor and released at shutdown.
    const std::string text = serve.log_text();
    EXPECT_NE(text.find("  ssd queue "), std::string::npos) << text;
    EXPECT_NE(text.find("keel: memory ledger balanced"), std::string::npos) << text;
    keel::test::CliRun v = verify(dir);
    ASSERT_EQ(v.exit_code, 0) << v.out << v.err;
  }

  // Warm: device and host tier start empty, so every cached token of the first prompt came from the SSD.
  std::vector<Completion> warm;
  {
    ServeProcess serve(dir, log);
    const int port = serve.wait_listening();
    ASSERT_GT(port, 0) << serve.log_text();
    for (const auto& p : prompts.fixed) warm.push_back(complete(port, p));
    httplib::Client c("127.0.0.1", port);
    auto metrics = c.Get("/metrics");
    ASSERT_TRUE(metrics);
    EXPECT_GT(metric(metrics->body, "keel_prefix_cache_hits_total\\{tier=\"ssd\"\\}"), 0u) << metrics->body;
    EXPECT_EQ(metric(metrics->body, "keel_ssd_cache_corrupt_total"), 0u) << metrics->body;
    EXPECT_EQ(serve.terminate(), 0) << serve.log_text();
  }
  // Cold: the same prompts on an empty directory.
  const std::string cold_dir = temp_dir("crash_cold");
  std::vector<Completion> cold;
  {
    ServeProcess serve(cold_dir, log);
    const int port = serve.wait_listening();
    ASSERT_GT(port, 0) << serve.log_text();
    for (const auto& p : prompts.fixed) cold.push_back(complete(port, p));
    EXPECT_EQ(serve.terminate(), 0) << serve.log_text();
  }
  ASSERT_TRUE(warm[0].ok) << warm[0].error;
  EXPECT_GT(warm[0].cached_tokens, 0) << "the first warm prompt found nothing on the SSD";
  EXPECT_EQ(cold[0].cached_tokens, 0);
  for (size_t i = 0; i < prompts.fixed.size(); i++) {
    ASSERT_TRUE(warm[i].ok && cold[i].ok) << warm[i].error << cold[i].error;
    EXPECT_EQ(warm[i].text, cold[i].text) << "prompt " << i << " (seed " << seed << "), " << warm[i].cached_tokens
                                          << " tokens cached";
  }
  std::printf("[ crash    ] warm from the SSD: first prompt %d of %zu tokens cached\n", warm[0].cached_tokens,
              prompts.fixed[0].size());
  std::filesystem::remove_all(dir);
  std::filesystem::remove_all(cold_dir);
  std::filesystem::remove(log);
}

// Write-through: a block goes to the SSD once it is full and computed, not only when the tiers above give it
// up. The device pool here (40 blocks) never evicts the one prompt, so only write-through can have put it on
// disk: after a completion returns and 2 s pass, kill -9 and a restart on the directory reuse its prefix.
TEST(CacheCrash, ACompletionsPrefixSurvivesAKill9TwoSecondsLater) {
  std::mt19937_64 rng(7);
  const std::vector<int> prompt = Prompts::tokens(rng, 150);
  const std::string dir = temp_dir("kill9_ssd");
  const std::string log = dir + ".log";
  Completion first;
  {
    ServeProcess serve(dir, log);
    const int port = serve.wait_listening();
    ASSERT_GT(port, 0) << serve.log_text();
    first = complete(port, prompt);
    ASSERT_TRUE(first.ok) << first.error;
    EXPECT_EQ(first.cached_tokens, 0);
    std::this_thread::sleep_for(2s);
    serve.kill9();
  }
  ServeProcess serve(dir, log);
  const int port = serve.wait_listening();
  ASSERT_GT(port, 0) << serve.log_text();
  const Completion again = complete(port, prompt);
  ASSERT_TRUE(again.ok) << again.error;
  EXPECT_EQ(again.cached_tokens, 144) << "9 full blocks of 16 (the last token is always computed)";
  EXPECT_EQ(again.text, first.text);
  EXPECT_EQ(serve.terminate(), 0) << serve.log_text();
  EXPECT_EQ(verify(dir).exit_code, 0);
  std::filesystem::remove_all(dir);
  std::filesystem::remove(log);
}

// One owner per directory: a second server, and `keel cache clear`, are refused while the first runs, each
// naming its pid; read-only `keel cache verify` may run beside it.
TEST(CacheCrash, ASecondServerOnTheDirectoryIsRefusedNamingTheFirstsPid) {
  const std::string dir = temp_dir("owner_ssd");
  ServeProcess first(dir, dir + ".first.log");
  ASSERT_GT(first.wait_listening(), 0) << first.log_text();
  const std::string holder = "held by process " + std::to_string(first.pid());
  {
    ServeProcess second(dir, dir + ".second.log");
    EXPECT_EQ(second.wait_listening(), 0) << "a second server started on the same --ssd-cache-dir";
    EXPECT_NE(second.log_text().find(holder), std::string::npos) << second.log_text();
  }
  keel::test::CliRun clear = keel::test::run_keel("cache clear --ssd-cache-dir " + dir);
  EXPECT_NE(clear.exit_code, 0);
  EXPECT_NE((clear.out + clear.err).find(holder), std::string::npos) << clear.out << clear.err;
  EXPECT_EQ(verify(dir).exit_code, 0);
  EXPECT_EQ(first.terminate(), 0) << first.log_text();
  EXPECT_EQ(keel::test::run_keel("cache clear --ssd-cache-dir " + dir).exit_code, 0);
  std::filesystem::remove_all(dir);
  std::filesystem::remove(dir + ".first.log");
  std::filesystem::remove(dir + ".second.log");
}
