// The bundled demo model (models/demo, made by tools/train_demo.py) as keel serves it: its chat template, tokenizer
// and greedy tokens must equal transformers' (models/demo/golden.json, written in the same training run).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sys/wait.h>
#include <unistd.h>

#include "keel_cli.h"

namespace {

using keel::test::joined;

const std::string kDemo = std::string(KEEL_SOURCE_DIR) + "/models/demo";

using KeelRun = keel::test::CliRun;
KeelRun keel_cli(const std::string& args) { return keel::test::run_keel(args); }

nlohmann::json golden() {
  std::ifstream f(kDemo + "/golden.json");
  return nlohmann::json::parse(f);
}

std::string write_temp(const std::string& name, const std::string& body) {
  const std::string path = "/tmp/keel_demo_test_" + std::to_string(::getpid()) + "_" + name;
  std::ofstream(path, std::ios::binary) << body;
  return path;
}

std::vector<int> parse_ids(const std::string& text) {
  std::vector<int> ids;
  std::string cur;
  for (char c : text + " ") {
    if (c >= '0' && c <= '9') {
      cur += c;
    } else if (!cur.empty()) {
      ids.push_back(std::stoi(cur));
      cur.clear();
    }
  }
  return ids;
}

TEST(DemoModel, FitsTheSizeBudget) {
  uintmax_t total = 0;
  for (const auto& e : std::filesystem::directory_iterator(kDemo))
    if (e.is_regular_file()) total += e.file_size();
  EXPECT_LE(total, 15u * 1000 * 1000);
}

TEST(DemoModel, InfoDescribesATinyLlama) {
  KeelRun r = keel_cli("info " + kDemo + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["architecture"], "LlamaForCausalLM");
  EXPECT_EQ(j["dtype"], "BF16");
  EXPECT_EQ(j["vocab_size"], 4096);
  EXPECT_GE(j["context_length"].get<int>(), 2048);
  EXPECT_EQ(j["tied_embeddings"], true);
  EXPECT_GT(j["parameters"].get<int64_t>(), 1000000);
  EXPECT_LT(j["parameters"].get<int64_t>(), 7500000);
}

TEST(DemoModel, ChatTemplateRendersLikeTransformers) {
  auto g = golden();
  const std::string messages = write_temp("messages.json", g["messages"].dump());
  KeelRun r = keel_cli("template " + kDemo + " --messages " + messages + " --add-generation-prompt");
  std::remove(messages.c_str());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, g["prompt"].get<std::string>());
}

TEST(DemoModel, TokenizesLikeTransformers) {
  auto g = golden();
  const std::string prompt = write_temp("prompt.txt", g["prompt"].get<std::string>());
  KeelRun r = keel_cli("tokenize " + kDemo + " --text-file " + prompt);
  std::remove(prompt.c_str());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(parse_ids(r.out), g["prompt_ids"].get<std::vector<int>>());

  r = keel_cli("tokenize " + kDemo + " --text \"Hello world\"");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(parse_ids(r.out), g["hello_world_ids"].get<std::vector<int>>());
}

TEST(DemoModel, GreedyTokensEqualTransformers) {
  auto g = golden();
  const auto want = g["greedy_ids"].get<std::vector<int>>();
  KeelRun r = keel_cli("generate " + kDemo + " --tokens \"" + joined(g["prompt_ids"].get<std::vector<int>>()) +
                   "\" --max-tokens " + std::to_string(want.size()) + " --temperature 0 --ignore-eos --ids");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto got = parse_ids(r.out);
  ASSERT_EQ(got.size(), want.size()) << r.out;
  for (size_t i = 0; i < want.size(); i++) {
    const auto& step = g["steps"][i];
    ASSERT_EQ(got[i], want[i]) << "step " << i << ": transformers' top ids " << step["top_ids"].dump()
                               << " logits " << step["top_logits"].dump();
  }
}

}  // namespace
