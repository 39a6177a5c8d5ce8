// `--synthetic SHAPE` on serve and bench serve: a model of a real shape with random weights and the byte
// tokenizer, served through the real HTTP stack (how the CUDA serving benchmark runs the 8B shape).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "keel_cli.h"

namespace {

using keel::test::CliRun;
using keel::test::run_keel;

TEST(ServeSynthetic, BenchServeRunsEveryRequestThroughHttp) {
  CliRun r = run_keel("bench serve --synthetic llama-100m --num-prompts 3 --concurrency 2 --input-len 8 "
                      "--output-len 4 --max-num-seqs 4 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["model"], "synthetic-llama-100m");
  EXPECT_EQ(j["completed"], 3);
  EXPECT_EQ(j["failed"], 0);
  EXPECT_EQ(j["output_tokens"], 12);  // ignore_eos: exactly output_len each
}

// A hybrid model through the plan (its recurrent-state line reserved against what the model holds: a drift would
// refuse to start), the engine's state slots and HTTP.
TEST(ServeSynthetic, BenchServeRunsAHybridModel) {
  CliRun r = run_keel("bench serve --synthetic qwen3-next-tiny --num-prompts 3 --concurrency 2 --input-len 8 "
                      "--output-len 4 --max-num-seqs 4 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["completed"], 3);
  EXPECT_EQ(j["failed"], 0);
  EXPECT_EQ(j["output_tokens"], 12);
  EXPECT_NE(r.err.find("prefix caching is off for Qwen3NextForCausalLM"), std::string::npos) << r.err;
}

TEST(ServeSynthetic, BadShapesAndConflictingFlagsAreClearErrors) {
  CliRun r = run_keel("serve --synthetic llama-7q --port 0");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--synthetic llama-7q: unknown shape (expected one of"), std::string::npos) << r.err;

  r = run_keel("serve " + std::string(KEEL_SOURCE_DIR) + "/models/demo --synthetic llama-100m --port 0");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("give one or the other"), std::string::npos) << r.err;

  r = run_keel("serve --synthetic llama-100m --ssd-cache-dir /tmp/never --port 0");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--ssd-cache-dir needs a model directory"), std::string::npos) << r.err;
}

}  // namespace
