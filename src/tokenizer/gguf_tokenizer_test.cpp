// Tokenizers read from GGUF metadata against HF `tokenizers`: the real Qwen3 and Llama 3 tokenizer.json files
// (`make tokenizers`) written into GGUF the way convert_hf_to_gguf.py writes them (tokens by id, merges, token
// types, pre-tokenizer name, bos/eos, add_bos_token) must encode every golden text of
// tests/golden/gen_tokenizers.py exactly as HF does, with and without special tokens.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "model/gguf_test_util.h"
#include "tokenizer/tokenizer.h"

namespace keel::tokenizer {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json read_json(const std::string& path) {
  std::ifstream f(path);
  return json::parse(f);
}

struct Case {
  const char* name;
  const char* pre;  // llama.cpp's tokenizer.ggml.pre for it
  bool add_bos;  // tokenizer.ggml.add_bos_token, as the file's post-processor says (these two add no BOS)
};

class GgufTokenizer : public ::testing::TestWithParam<Case> {};

TEST_P(GgufTokenizer, EncodesTheGoldenTextsLikeHuggingFace) {
  const Case& c = GetParam();
  const std::string dir = std::string(KEEL_SOURCE_DIR) + "/.npm-tokenizers/" + c.name + "/package/models";
  if (!fs::exists(dir + "/tokenizer.json")) GTEST_SKIP() << dir << " is absent (make tokenizers)";
  const json tok = read_json(dir + "/tokenizer.json");
  const json cfg = read_json(dir + "/tokenizer_config.json");
  size_t n = 0;
  for (auto& [t, id] : tok["model"]["vocab"].items()) n = std::max(n, id.get<size_t>() + 1);
  for (auto& a : tok["added_tokens"]) n = std::max(n, a["id"].get<size_t>() + 1);
  std::vector<std::string> tokens(n);
  std::vector<int32_t> types(n, 1);
  for (auto& [t, id] : tok["model"]["vocab"].items()) tokens[id.get<size_t>()] = t;
  for (auto& a : tok["added_tokens"]) {
    tokens[a["id"].get<size_t>()] = a["content"];
    types[a["id"].get<size_t>()] = a["special"].get<bool>() ? 3 : 4;
  }
  std::vector<std::string> merges;
  for (auto& m : tok["model"]["merges"])
    merges.push_back(m.is_string() ? m.get<std::string>() : m[0].get<std::string>() + " " + m[1].get<std::string>());
  auto id_of = [&](const json& v) -> int {
    const std::string s = v.is_string() ? v.get<std::string>() : v.value("content", "");
    for (size_t i = 0; i < tokens.size(); i++)
      if (tokens[i] == s) return static_cast<int>(i);
    return -1;
  };
  model::testing::GgufWriter w;
  w.str("general.architecture", "llama");
  w.str("tokenizer.ggml.model", "gpt2");
  w.str("tokenizer.ggml.pre", c.pre);
  w.str_array("tokenizer.ggml.tokens", tokens);
  w.i32_array("tokenizer.ggml.token_type", types);
  w.str_array("tokenizer.ggml.merges", merges);
  if (cfg.contains("bos_token") && !cfg["bos_token"].is_null()) w.u32("tokenizer.ggml.bos_token_id", id_of(cfg["bos_token"]));
  if (cfg.contains("eos_token") && !cfg["eos_token"].is_null()) w.u32("tokenizer.ggml.eos_token_id", id_of(cfg["eos_token"]));
  w.boolean("tokenizer.ggml.add_bos_token", c.add_bos);
  char tmpl[] = "/tmp/keel_gguf_tok_XXXXXX";
  const std::string tmp = mkdtemp(tmpl);
  const std::string path = tmp + "/tok.gguf";
  w.write(path);
  auto t = Tokenizer::load(path);
  fs::remove_all(tmp);
  ASSERT_TRUE(t.ok()) << t.status().message();
  const json g = read_json(std::string(KEEL_SOURCE_DIR) + "/tests/golden/tokenizers/" + c.name + ".json");
  size_t failed = 0, cases = 0;
  for (const json& k : g["cases"]) {
    const std::string text = k["text"];
    cases++;
    if (t->encode(text, false) != k["ids"].get<std::vector<int32_t>>() ||
        t->encode(text, true) != k["ids_special"].get<std::vector<int32_t>>()) {
      if (failed++ < 3)
        ADD_FAILURE() << c.name << ": " << json(text).dump() << " gives " << json(t->encode(text, false)).dump() << " / "
                      << json(t->encode(text, true)).dump() << ", HF " << k["ids"].dump() << " / " << k["ids_special"].dump();
    }
  }
  EXPECT_EQ(failed, 0u) << "of " << cases;
  EXPECT_GE(cases, 100u);
}

// add_bos_token: encoding with special tokens puts the BOS first (a TemplateProcessing post-processor), and the
// SentencePiece vocabularies keel cannot read yet are refused by name.
TEST(GgufTokenizerMetadata, AddBosTokenPrefixesTheBosAndSentencePieceIsRefused) {
  const json tok = read_json(std::string(KEEL_SOURCE_DIR) + "/models/demo/tokenizer.json");
  std::vector<std::string> tokens(4096);
  for (auto& [t, id] : tok["model"]["vocab"].items()) tokens[id.get<size_t>()] = t;
  std::vector<int32_t> types(tokens.size(), 1);
  for (auto& a : tok["added_tokens"]) tokens[a["id"].get<size_t>()] = a["content"], types[a["id"].get<size_t>()] = 3;
  std::vector<std::string> merges;
  for (auto& m : tok["model"]["merges"]) merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
  char tmpl[] = "/tmp/keel_gguf_tok_XXXXXX";
  const std::string tmp = mkdtemp(tmpl);
  for (const char* model : {"gpt2", "llama"}) {
    model::testing::GgufWriter w;
    w.str("general.architecture", "llama");
    w.str("tokenizer.ggml.model", model);
    w.str("tokenizer.ggml.pre", "qwen2");
    w.str_array("tokenizer.ggml.tokens", tokens);
    w.i32_array("tokenizer.ggml.token_type", types);
    w.str_array("tokenizer.ggml.merges", merges);
    w.u32("tokenizer.ggml.bos_token_id", 1);
    w.boolean("tokenizer.ggml.add_bos_token", true);
    w.write(tmp + "/" + model + ".gguf");
  }
  auto t = Tokenizer::load(tmp + "/gpt2.gguf");
  ASSERT_TRUE(t.ok()) << t.status().message();
  std::vector<int32_t> plain = t->encode("Tell me a fortune.", false);
  plain.insert(plain.begin(), 1);
  EXPECT_EQ(t->encode("Tell me a fortune.", true), plain);
  EXPECT_EQ(t->bos_id(), std::optional<int32_t>(1));
  auto spm = Tokenizer::load(tmp + "/llama.gguf");
  fs::remove_all(tmp);
  ASSERT_FALSE(spm.ok());
  EXPECT_NE(spm.status().message().find("'llama'"), std::string::npos) << spm.status().message();
}

INSTANTIATE_TEST_SUITE_P(RealTokenizers, GgufTokenizer,
                         ::testing::Values(Case{"qwen3", "qwen2", false}, Case{"llama3", "llama-bpe", false}),
                         [](const ::testing::TestParamInfo<Case>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace keel::tokenizer
