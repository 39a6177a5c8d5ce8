// The CLI as a user drives it: exit codes, stdout, and files, against the golden references.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sys/wait.h>

#include "env/env.h"
#include "keel_cli.h"
#include "format/npy.h"

namespace {

using keel::test::joined;

const std::string kModels = std::string(KEEL_SOURCE_DIR) + "/tests/golden/models/";

using keel::test::CliRun;
CliRun keel(const std::string& args) { return keel::test::run_keel(args); }

nlohmann::json golden(const std::string& model) {
  std::ifstream f(kModels + model + "/golden.json");
  return nlohmann::json::parse(f);
}

TEST(Cli, InfoJsonDescribesTheModel) {
  CliRun r = keel("info " + kModels + "qwen3_moe --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["architecture"], "Qwen3MoeForCausalLM");
  EXPECT_EQ(j["layers"], 3);
  EXPECT_EQ(j["experts"], 8);
  EXPECT_EQ(j["moe_layers"], 2);
  EXPECT_EQ(j["head_dim"], 16);
  EXPECT_EQ(j["dtype"], "F32");
  // 2 (K and V) x 3 layers x 2 kv heads x 16 dims x 4 bytes
  EXPECT_EQ(j["kv_bytes_per_token"], 768);
  EXPECT_GT(j["parameters"].get<int64_t>(), 100000);
}

TEST(Cli, LogitsWritesTheReferenceNpy) {
  auto g = golden("gemma3");
  const std::string out = "/tmp/keel_cli_logits_" + std::to_string(::getpid()) + ".npy";
  CliRun r = keel("logits " + kModels + "gemma3 --tokens \"" + joined(g["tokens"].get<std::vector<int>>()) + "\" --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto got = keel::format::read_npy(keel::env::Env::posix(), out);
  auto want = keel::format::read_npy(keel::env::Env::posix(), kModels + "gemma3/logits.npy");
  ASSERT_TRUE(got.ok() && want.ok());
  EXPECT_EQ(got->shape, want->shape);
  double num = 0, den = 0;
  for (size_t i = 0; i < want->data.size(); i++) {
    num += std::pow(got->data[i] - want->data[i], 2);
    den += std::pow(want->data[i], 2);
  }
  EXPECT_LE(std::sqrt(num / den), 1e-4);
  std::remove(out.c_str());
}

TEST(Cli, GenerateIdsPrintsTheGreedyTokensOnOneLine) {
  auto g = golden("qwen2_tied");
  CliRun r = keel("generate " + kModels + "qwen2_tied --tokens \"" + joined(g["tokens"].get<std::vector<int>>()) +
               "\" --max-tokens 24 --temperature 0 --ignore-eos --ids");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, joined(g["greedy"].get<std::vector<int>>()) + "\n");
}

TEST(Cli, GenerateWithSeedIsReproducible) {
  const std::string args = "generate " + kModels + "llama3_v4 --tokens \"5 6 7\" --max-tokens 8 --temperature 0.9 "
                           "--top-p 0.9 --top-k 50 --seed 7 --ids";
  CliRun a = keel(args), b = keel(args);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
}

TEST(Cli, BadInputExitsOneWithAnErrorLine) {
  CliRun r = keel("info /nonexistent/model");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find("/nonexistent/model"), std::string::npos);

  r = keel("logits " + kModels + "qwen3 --tokens \"1 x 3\" --out /tmp/never.npy");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("token id 'x'"), std::string::npos) << r.err;

  r = keel("generate " + kModels + "qwen3 --tokens \"1 2 999\" --max-tokens 2");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("token id 999 is outside the vocabulary"), std::string::npos) << r.err;

  r = keel("generate " + kModels + "qwen3 --tokens \"1 2\" --max-tokens 1000");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("context"), std::string::npos) << r.err;
}

TEST(Cli, UsageErrorsExitTwo) {
  EXPECT_EQ(keel("logits").exit_code, 2);
  EXPECT_EQ(keel("no-such-command").exit_code, 2);
}

}  // namespace

namespace {

const std::string kDemo = std::string(KEEL_SOURCE_DIR) + "/models/demo";

// transformers' greedy answers of the demo model (tools/train_demo.py printed them when it was trained).
TEST(Cli, RunChatsWithTheTemplateAndStreamsTheGreedyAnswer) {
  const std::string in = "/tmp/keel_run_in_" + std::to_string(::getpid());
  {
    std::ofstream f(in);
    f << "Tell me a fortune.\n/exit\n";
  }
  CliRun r = keel("run " + kDemo + " --temperature 0 --max-tokens 40 < " + in);
  std::remove(in.c_str());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "The only thing better than love is milk.\n");
}

TEST(Cli, GenerateFromTextStreamsTheDecodedCompletion) {
  CliRun text = keel("generate " + kDemo + " --prompt \"Once upon a time\" --max-tokens 12 --temperature 0 --ignore-eos");
  CliRun ids = keel("generate " + kDemo + " --prompt \"Once upon a time\" --max-tokens 12 --temperature 0 --ignore-eos --ids");
  ASSERT_EQ(text.exit_code, 0) << text.err;
  ASSERT_EQ(ids.exit_code, 0) << ids.err;
  CliRun decoded = keel("detokenize " + kDemo + " --skip-special --ids \"" + ids.out.substr(0, ids.out.size() - 1) + "\"");
  ASSERT_EQ(decoded.exit_code, 0) << decoded.err;
  EXPECT_EQ(text.out, decoded.out + "\n");
}

TEST(Cli, PromptWithoutTokenizerIsAClearError) {
  CliRun r = keel("generate " + kModels + "qwen3 --prompt hello");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--prompt needs the model's tokenizer"), std::string::npos) << r.err;
}

}  // namespace
