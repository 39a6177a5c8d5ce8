// keel tokenize / detokenize as other tools drive them: stdout, stderr and exit codes of the built binary.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <string>

#include "keel_cli.h"

namespace {

using keel::test::CliRun;
// Runs keel with `args` (already shell-quoted), stderr merged into out when `merge_stderr`.
CliRun keel(const std::string& args, bool merge_stderr = false) { return keel::test::run_keel(args, merge_stderr); }

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string dir(const std::string& name) {
  return quote(std::string(KEEL_SOURCE_DIR) + "/.npm-tokenizers/" + name + "/package/models");
}

nlohmann::json golden(const std::string& name) {
  std::ifstream f(std::string(KEEL_SOURCE_DIR) + "/tests/golden/tokenizers/" + name + ".json");
  return nlohmann::json::parse(f);
}

TEST(TokenizeCli, PrintsTheIdsOfHuggingFaceAsAJsonArrayOnOneLine) {
  for (const char* name : {"qwen3", "llama3", "gemma3"}) {
    auto g = golden(name);
    for (size_t i = 0; i < g["cases"].size(); i += 67) {
      const auto& c = g["cases"][i];
      std::string text = c["text"];
      if (text.find('\0') != std::string::npos) continue;  // not passable as an argument
      CliRun plain = keel("tokenize " + dir(name) + " --text " + quote(text));
      ASSERT_EQ(plain.exit_code, 0) << name;
      EXPECT_EQ(nlohmann::json::parse(plain.out), c["ids"]) << name << " " << nlohmann::json(text).dump();
      EXPECT_EQ(plain.out.back(), '\n');
      EXPECT_EQ(plain.out.find('\n'), plain.out.size() - 1);
      CliRun special = keel("tokenize " + dir(name) + " --add-special --text " + quote(text));
      EXPECT_EQ(nlohmann::json::parse(special.out), c["ids_special"]) << name;
    }
  }
}

TEST(TokenizeCli, ReadsTheTextFromAFileByteForByte) {
  std::string path = ::testing::TempDir() + "/keel_tokenize_text.txt";
  std::ofstream(path, std::ios::binary) << "<|im_start|>user\r\nhi  \n";
  CliRun file = keel("tokenize " + dir("qwen3") + " --text-file " + quote(path));
  CliRun arg = keel("tokenize " + dir("qwen3") + " --text " + quote("<|im_start|>user\r\nhi  \n"));
  ASSERT_EQ(file.exit_code, 0);
  EXPECT_EQ(file.out, arg.out);
  EXPECT_EQ(nlohmann::json::parse(file.out)[0], 151644);
}

TEST(DetokenizeCli, PrintsExactlyTheDecodedText) {
  auto g = golden("qwen3");
  const auto& c = g["cases"][5];
  std::string ids;
  for (const auto& id : c["ids_special"]) ids += std::to_string(id.get<int>()) + " ";
  CliRun r = keel("detokenize " + dir("qwen3") + " --ids " + quote(ids));
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, c["decoded"].get<std::string>());
}

TEST(TokenizerCliErrors, AreOneLineOnStderrWithExitCodeOne) {
  CliRun bad_id = keel("detokenize " + dir("qwen3") + " --ids '1 x'", true);
  EXPECT_EQ(bad_id.exit_code, 1);
  EXPECT_EQ(bad_id.out, "error: 'x' is not a token id, expected a non-negative integer (--ids)\n");
  CliRun no_dir = keel("tokenize /nonexistent-keel-dir --text a", true);
  EXPECT_EQ(no_dir.exit_code, 1);
  EXPECT_EQ(no_dir.out, "error: no tokenizer.json in the directory (/nonexistent-keel-dir)\n");
  CliRun no_text = keel("tokenize " + dir("qwen3"), true);
  EXPECT_EQ(no_text.exit_code, 2);
}

}  // namespace
