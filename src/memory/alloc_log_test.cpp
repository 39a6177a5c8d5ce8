#include "memory/alloc_log.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sstream>
#include <thread>
#include <vector>

#include "memory/governor.h"
#include "memory/test_env.h"

namespace keel::memory {
namespace {

constexpr uint64_t MiB = 1ull << 20;
constexpr uint64_t GiB = 1ull << 30;

std::vector<nlohmann::ordered_json> parse_lines(const std::string& text) {
  std::vector<nlohmann::ordered_json> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) out.push_back(nlohmann::ordered_json::parse(line));
  return out;
}

AllocEntry kv_entry(uint64_t bytes) {
  AllocEntry e;
  e.purpose = "kv_pool";
  e.planned = bytes;
  e.actual = bytes;
  e.model = "qwen3-8b";
  e.dtype = "bf16";
  e.batch = 2048;
  e.context = 32768;
  e.budget = 64 * GiB;
  e.in_use = 20 * GiB;
  return e;
}

TEST(AllocLog, WritesOneJsonLinePerLargeAllocation) {
  testing::MemEnv env;
  auto log = AllocLog::open(&env, "/logs/alloc.jsonl", env.clock());
  ASSERT_TRUE(log.ok()) << log.status().message();
  ASSERT_TRUE((*log)->record(kv_entry(4 * GiB)).ok());
  AllocEntry weights = kv_entry(16 * GiB);
  weights.purpose = "weights";
  weights.actual = 16 * GiB + 4096;
  weights.batch.reset();
  weights.in_use.reset();
  env.clock_micros += 2500000;
  ASSERT_TRUE((*log)->record(weights).ok());

  std::string text = env.contents("/logs/alloc.jsonl");
  EXPECT_EQ(text.substr(0, text.find('\n')),
            R"({"time":"2025-11-26T10:00:00.000Z","purpose":"kv_pool","bytes":4294967296,"planned":4294967296,)"
            R"("actual":4294967296,"model":"qwen3-8b","dtype":"bf16","batch":2048,"context":32768,)"
            R"("budget":68719476736,"in_use":21474836480})");
  auto lines = parse_lines(text);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1]["time"], "2025-11-26T10:00:02.500Z");
  EXPECT_EQ(lines[1]["purpose"], "weights");
  EXPECT_EQ(lines[1]["bytes"], 16 * GiB + 4096);
  EXPECT_EQ(lines[1]["planned"], 16 * GiB);
  EXPECT_EQ(lines[1]["actual"], 16 * GiB + 4096);
  EXPECT_FALSE(lines[1].contains("batch"));
  EXPECT_FALSE(lines[1].contains("in_use"));
  EXPECT_EQ(lines[1]["context"], 32768);
  EXPECT_EQ((*log)->lines_written(), 2u);
  EXPECT_EQ(env.syncs(), 2);  // each line is durable before record() returns
}

TEST(AllocLog, AllocationsBelow64MiBAreNotWritten) {
  testing::MemEnv env;
  auto log = AllocLog::open(&env, "alloc.jsonl", env.clock());
  ASSERT_TRUE(log.ok());
  ASSERT_TRUE((*log)->record(kv_entry(64 * MiB - 1)).ok());
  EXPECT_EQ(env.contents("alloc.jsonl"), "");
  ASSERT_TRUE((*log)->record(kv_entry(64 * MiB)).ok());
  auto lines = parse_lines(env.contents("alloc.jsonl"));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["bytes"], 64 * MiB);
  // An allocation planned large but taken small is still worth a line: the plan was wrong.
  AllocEntry e = kv_entry(0);
  e.planned = 128 * MiB;
  e.actual = 1 * MiB;
  ASSERT_TRUE((*log)->record(e).ok());
  EXPECT_EQ((*log)->lines_written(), 2u);
}

TEST(AllocLog, AppendsToAnExistingLog) {
  testing::MemEnv env;
  ASSERT_TRUE(env.write_file_atomic("alloc.jsonl", "{\"purpose\":\"earlier run\"}\n").ok());
  auto log = AllocLog::open(&env, "alloc.jsonl", env.clock());
  ASSERT_TRUE(log.ok());
  ASSERT_TRUE((*log)->record(kv_entry(GiB)).ok());
  auto lines = parse_lines(env.contents("alloc.jsonl"));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["purpose"], "earlier run");
  EXPECT_EQ(lines[1]["purpose"], "kv_pool");
}

TEST(AllocLog, UnwritablePathIsAStartupErrorNamingTheFlag) {
  testing::MemEnv env;
  auto log = AllocLog::open(&env, "/readonly/alloc.jsonl", env.clock());
  ASSERT_FALSE(log.ok());
  EXPECT_EQ(log.status().code(), Code::kIOError);
  EXPECT_EQ(log.status().message(),
            "--alloc-log /readonly/alloc.jsonl: cannot open for appending: create /readonly/alloc.jsonl: Permission "
            "denied");

  auto posix = AllocLog::open(env::Env::posix(), "/nonexistent/keel/alloc.jsonl");
  ASSERT_FALSE(posix.ok());
  EXPECT_TRUE(posix.status().message().starts_with("--alloc-log /nonexistent/keel/alloc.jsonl: cannot open"))
      << posix.status().message();
}

TEST(AllocLog, LinesFromManyThreadsStayWhole) {
  testing::MemEnv env;
  auto log = AllocLog::open(&env, "alloc.jsonl", env.clock());
  ASSERT_TRUE(log.ok());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) EXPECT_TRUE((*log)->record(kv_entry(GiB)).ok());
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(parse_lines(env.contents("alloc.jsonl")).size(), 200u);
}

Plan big_plan() {
  PlanInputs in;
  in.model = "llama-8b";
  in.weight_bytes = 15 * GiB;
  in.shape = {.num_layers = 32, .num_heads = 32, .num_kv_heads = 8, .head_dim = 128, .hidden_size = 4096,
              .intermediate_size = 14336, .vocab_size = 128256, .kv_dtype_bytes = 2};
  in.max_model_len = 8192;
  in.max_num_seqs = 4;
  in.max_num_batched_tokens = 2048;  // activations (570 MB) above 1% of the plan
  in.max_process_memory = "40GB";
  auto plan = make_plan(in, {"host", 64 * GiB, 0}, std::nullopt);
  EXPECT_TRUE(plan.ok()) << plan.status().message();
  return *plan;
}

TEST(Governor, ReserveCountsTheBufferAndLogsItWithThePlansContext) {
  testing::MemEnv env;
  auto log = AllocLog::open(&env, "alloc.jsonl", env.clock());
  ASSERT_TRUE(log.ok());
  Plan plan = big_plan();
  Governor gov(plan, std::move(log).value(), env.clock());
  ASSERT_TRUE(gov.reserve("weights", "weights", plan.weight_bytes, plan.weight_bytes, "bf16", "loader").ok());
  ASSERT_TRUE(gov.reserve("kv_pool", "kv_pool", plan.kv_bytes, plan.kv_bytes, "bf16", "backend").ok());
  ASSERT_TRUE(gov.reserve("scratch", "activations", 1 * MiB, 1 * MiB, "f32", "model").ok());  // below 64 MiB

  EXPECT_EQ(gov.ledger().allocations_total(), 3u);
  EXPECT_EQ(gov.ledger().bytes_reserved(), plan.weight_bytes + plan.kv_bytes + MiB);
  auto lines = parse_lines(env.contents("alloc.jsonl"));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1]["purpose"], "kv_pool");
  EXPECT_EQ(lines[1]["model"], "llama-8b");
  EXPECT_EQ(lines[1]["batch"], 2048);
  EXPECT_EQ(lines[1]["context"], 8192);
  EXPECT_EQ(lines[1]["budget"], 40 * GiB);
  EXPECT_EQ(lines[1]["in_use"], plan.weight_bytes + plan.kv_bytes);

  EXPECT_FALSE(gov.ledger().check_balanced().ok());
  ASSERT_TRUE(gov.unreserve("scratch", "model").ok());
  ASSERT_TRUE(gov.unreserve("kv_pool", "backend").ok());
  ASSERT_TRUE(gov.unreserve("weights", "loader").ok());
  EXPECT_TRUE(gov.ledger().check_balanced().ok());
  EXPECT_FALSE(gov.unreserve("weights", "loader").ok());
}

TEST(Governor, AllocationOverItsPlanIsRefused) {
  testing::MemEnv env;
  Governor gov(big_plan(), nullptr, env.clock());
  EXPECT_TRUE(gov.reserve("a", "activations", 100 * MiB, 101 * MiB, "f32", "model").ok());  // within 1%
  Status s = gov.reserve("b", "activations", 100 * MiB, 102 * MiB, "f32", "model");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::kResourceExhausted);
  EXPECT_EQ(s.message(), "memory: b (activations) took 102.0 MiB but the plan set aside 100.0 MiB; the plan no "
                         "longer proves that everything fits");
  EXPECT_EQ(gov.ledger().holders("b"), 0);
}

TEST(Governor, BuffersThatAddUpOverThePlanAreCaught) {
  testing::MemEnv env;
  Plan plan = big_plan();
  Governor gov(plan, nullptr, env.clock());
  ASSERT_TRUE(gov.reserve("weights", "weights", plan.weight_bytes, plan.weight_bytes, "bf16", "loader").ok());
  ASSERT_TRUE(gov.reserve("kv_pool", "kv_pool", plan.kv_bytes, plan.kv_bytes, "bf16", "backend").ok());
  ASSERT_TRUE(gov.reserve("act.0", "activations", plan.activation_bytes, plan.activation_bytes, "f32", "m").ok());
  EXPECT_TRUE(gov.check_within_plan().ok());
  // A second buffer of the full activation size: each one is within its own plan, together they are not.
  ASSERT_TRUE(gov.reserve("act.1", "activations", plan.activation_bytes, plan.activation_bytes, "f32", "m").ok());
  Status s = gov.check_within_plan();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::kResourceExhausted);
  EXPECT_TRUE(s.message().starts_with("memory: ")) << s.message();
}

TEST(Governor, TheSsdWriteQueueCountsTowardsThePlan) {
  testing::MemEnv env;
  Plan plan = big_plan();
  plan.ssd_queue_bytes = 1 * GiB;  // more than the 1% slack of the other lines
  Governor gov(plan, nullptr, env.clock());
  ASSERT_TRUE(gov.reserve("weights", "weights", plan.weight_bytes, plan.weight_bytes, "bf16", "loader").ok());
  ASSERT_TRUE(gov.reserve("kv_pool", "kv_pool", plan.kv_bytes, plan.kv_bytes, "bf16", "backend").ok());
  ASSERT_TRUE(gov.reserve("activations", "activations", plan.activation_bytes, plan.activation_bytes, "f32", "m").ok());
  ASSERT_TRUE(gov.reserve("ssd_queue", "ssd_queue", plan.ssd_queue_bytes, plan.ssd_queue_bytes, "f32", "s").ok());
  EXPECT_TRUE(gov.check_within_plan().ok());
  // More than the plan set aside for it is refused like any buffer.
  EXPECT_EQ(gov.reserve("ssd_queue.2", "ssd_queue", plan.ssd_queue_bytes, 2 * plan.ssd_queue_bytes, "f32", "s").code(),
            Code::kResourceExhausted);
  // A plan without the queue line does not hold it.
  Plan without = big_plan();
  Governor other(without, nullptr, env.clock());
  ASSERT_TRUE(other.reserve("weights", "weights", without.weight_bytes, without.weight_bytes, "bf16", "l").ok());
  ASSERT_TRUE(other.reserve("kv_pool", "kv_pool", without.kv_bytes, without.kv_bytes, "bf16", "b").ok());
  ASSERT_TRUE(other.reserve("activations", "activations", without.activation_bytes, without.activation_bytes, "f32", "m").ok());
  ASSERT_TRUE(other.reserve("ssd_queue", "ssd_queue", 1 * GiB, 1 * GiB, "f32", "s").ok());
  Status s = other.check_within_plan();
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(s.message().ends_with("+ ssd queue 0 B)")) << s.message();
}

}  // namespace
}  // namespace keel::memory
