// The demo model as one GGUF file (written here the way convert_hf_to_gguf.py writes a llama: q/k rows permuted,
// byte-level BPE vocabulary, merges and token types, pre-tokenizer "qwen2", ChatML template in the metadata), run
// through the keel binary: its template, tokens and greedy generation must equal transformers' (golden.json) and
// the directory's.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "format/npy.h"
#include "format/safetensors.h"
#include "keel_cli.h"
#include "model/gguf_test_util.h"

namespace {

namespace fs = std::filesystem;
using keel::test::joined;
const std::string kDemo = std::string(KEEL_SOURCE_DIR) + "/models/demo";

nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  return nlohmann::json::parse(f);
}

// Written once per process into a temporary directory.
class DemoGguf : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/keel_gguf_demo_XXXXXX";
    dir_ = mkdtemp(tmpl);
    path_ = dir_ + "/demo.gguf";
    q8_path_ = dir_ + "/demo-q8_0.gguf";
    write(path_, false);
    write(q8_path_, true);
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  // `q8`: every matrix as Q8_0 (all of the demo's rows are whole 32-value blocks), norms F32.
  static void write(const std::string& path, bool q8) {
    using keel::model::testing::GgufTensorOut;
    const nlohmann::json config = read_json(kDemo + "/config.json");
    const nlohmann::json tok = read_json(kDemo + "/tokenizer.json");
    const nlohmann::json tok_config = read_json(kDemo + "/tokenizer_config.json");
    keel::model::testing::GgufWriter w;
    w.str("general.architecture", "llama");
    w.u32("llama.context_length", config["max_position_embeddings"]);
    w.u32("llama.embedding_length", config["hidden_size"]);
    w.u32("llama.feed_forward_length", config["intermediate_size"]);
    w.u32("llama.block_count", config["num_hidden_layers"]);
    const int heads = config["num_attention_heads"], kv_heads = config["num_key_value_heads"];
    w.u32("llama.attention.head_count", heads);
    w.u32("llama.attention.head_count_kv", kv_heads);
    w.u32("llama.attention.key_length", config["head_dim"]);
    w.f32("llama.attention.layer_norm_rms_epsilon", config["rms_norm_eps"].get<float>());
    w.f32("llama.rope.freq_base", config["rope_parameters"]["rope_theta"].get<float>());
    // Vocabulary by id: the BPE vocab and the added tokens (all special here: control, type 3).
    std::vector<std::string> tokens(config["vocab_size"].get<size_t>());
    std::vector<int32_t> types(tokens.size(), 1);
    for (auto& [t, id] : tok["model"]["vocab"].items()) tokens[id.get<size_t>()] = t;
    for (auto& a : tok["added_tokens"]) {
      tokens[a["id"].get<size_t>()] = a["content"];
      types[a["id"].get<size_t>()] = a["special"].get<bool>() ? 3 : 4;
    }
    std::vector<std::string> merges;
    for (auto& m : tok["model"]["merges"])
      merges.push_back(m.is_string() ? m.get<std::string>() : m[0].get<std::string>() + " " + m[1].get<std::string>());
    w.str("tokenizer.ggml.model", "gpt2");
    w.str("tokenizer.ggml.pre", "qwen2");
    w.str_array("tokenizer.ggml.tokens", tokens);
    w.i32_array("tokenizer.ggml.token_type", types);
    w.str_array("tokenizer.ggml.merges", merges);
    w.u32("tokenizer.ggml.eos_token_id", 2);
    w.boolean("tokenizer.ggml.add_bos_token", false);
    w.str("tokenizer.chat_template", tok_config["chat_template"]);
    auto files = keel::format::WeightFiles::open(keel::env::Env::posix(), kDemo);
    ASSERT_TRUE(files.ok()) << files.status().message();
    for (auto& [name, t] : files->all()) {
      std::vector<float> v(t->numel());
      keel::to_float(t->dtype, t->data, v.data(), v.size());
      const std::string g = keel::model::testing::gguf_name(name, false);
      ASSERT_FALSE(g.empty()) << name;
      const bool q = name.find("q_proj") != std::string::npos, k = name.find("k_proj") != std::string::npos;
      if (q || k) v = keel::model::testing::llama_permute(v, t->shape[0], t->shape[1], q ? heads : kv_heads);
      GgufTensorOut out{0, t->shape, std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4)};
      std::vector<float> dequantized;
      if (q8 && t->shape.size() == 2) out = GgufTensorOut{8, t->shape, keel::model::testing::quantize_q8_0(v, &dequantized)};
      w.tensor(g, out);
    }
    w.write(path);
  }

  static std::string dir_, path_, q8_path_;
};
std::string DemoGguf::dir_, DemoGguf::path_, DemoGguf::q8_path_;

std::vector<int> ids_of(const std::string& text) {
  std::vector<int> ids;
  std::string cur;
  for (char c : text + " ") {
    if (c >= '0' && c <= '9') cur += c;
    else if (!cur.empty()) ids.push_back(std::stoi(cur)), cur.clear();
  }
  return ids;
}

// The greedy tokens llama.cpp itself picks (node-llama-cpp 3.21.1's CPU prebuilt, installed by `make node-llama-cpp`
// into .deps/) from a GGUF file, or an empty list when it is not installed.
std::vector<int> llama_cpp_greedy(const std::string& path, const std::string& prompt, int n) {
  const std::string root = std::string(KEEL_SOURCE_DIR) + "/.deps/node-llama-cpp";
  const std::string cmd = "KEEL_NODE_LLAMA_CPP=" + root + " timeout 300 node " + KEEL_SOURCE_DIR +
                          "/tests/gguf/llama_cpp_greedy.mjs " + path + " \"" + prompt + "\" " + std::to_string(n);
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return {};
  std::string out;
  char buf[4096];
  size_t got;
  while ((got = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, got);
  EXPECT_EQ(::pclose(p), 0) << cmd << "\n" << out;
  return ids_of(out);
}

// llama.cpp must pick keel's greedy tokens from the same file. In F32 both compute in f32: all 24 equal. In Q8_0
// llama.cpp also quantizes the activations (keel's oracle computes in f32 on the dequantized weights), so the two
// may part where keel's choice is a near tie: they must agree up to a position where keel's own logits put
// llama.cpp's token within 0.5 of its top one.
TEST_F(DemoGguf, LlamaCppPicksTheSameGreedyTokens) {
  if (!fs::exists(std::string(KEEL_SOURCE_DIR) + "/.deps/node-llama-cpp/node_modules/node-llama-cpp/package.json"))
    GTEST_SKIP() << "node-llama-cpp is not installed (make node-llama-cpp): llama.cpp's check of keel's GGUF skipped";
  const nlohmann::json g = read_json(kDemo + "/golden.json");
  const std::vector<int> prompt = g["prompt_ids"].get<std::vector<int>>();
  const int n = 24;
  for (const std::string& path : {path_, q8_path_}) {
    SCOPED_TRACE(path);
    auto ours = keel::test::run_keel("generate " + path + " --tokens \"" + joined(prompt) + "\" --max-tokens " +
                                     std::to_string(n) + " --temperature 0 --ignore-eos --ids");
    ASSERT_EQ(ours.exit_code, 0) << ours.err;
    std::vector<int> keel_ids = ids_of(ours.out);
    ASSERT_GE(keel_ids.size(), static_cast<size_t>(n)) << ours.out;
    keel_ids.erase(keel_ids.begin(), keel_ids.end() - n);  // --ids may echo the prompt first
    const std::vector<int> theirs = llama_cpp_greedy(path, joined(prompt), n);
    ASSERT_EQ(theirs.size(), static_cast<size_t>(n));
    if (path == path_) {
      EXPECT_EQ(keel_ids, theirs);
      continue;
    }
    size_t i = 0;
    while (i < theirs.size() && theirs[i] == keel_ids[i]) i++;
    std::printf("[llama.cpp] Q8_0: the same %zu of %d greedy tokens\n", i, n);
    if (i == theirs.size()) continue;
    std::vector<int> prefix = prompt;
    prefix.insert(prefix.end(), keel_ids.begin(), keel_ids.begin() + i);
    const std::string npy = dir_ + "/logits.npy";
    auto r = keel::test::run_keel("logits " + path + " --tokens \"" + joined(prefix) + "\" --out " + npy);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto logits = keel::format::read_npy(keel::env::Env::posix(), npy);
    ASSERT_TRUE(logits.ok()) << logits.status().message();
    const size_t vocab = logits->shape[1];
    const float* last = logits->data.data() + (prefix.size() - 1) * vocab;
    const float margin = last[keel_ids[i]] - last[theirs[i]];
    std::printf("[llama.cpp] Q8_0 parts at token %zu: keel's logit margin over llama.cpp's pick %.3f\n", i, margin);
    EXPECT_GE(i, 3u);
    EXPECT_GE(margin, 0.0f);
    EXPECT_LT(margin, 0.5f) << "llama.cpp picked " << theirs[i] << ", keel " << keel_ids[i];
  }
}

TEST_F(DemoGguf, TemplateFromTheMetadataRendersTransformersPrompt) {
  const nlohmann::json g = read_json(kDemo + "/golden.json");
  const std::string messages = dir_ + "/messages.json";
  std::ofstream(messages) << g["messages"].dump();
  auto r = keel::test::run_keel("template " + path_ + " --messages " + messages + " --add-generation-prompt");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, g["prompt"].get<std::string>());
}

TEST_F(DemoGguf, TokenizerFromTheMetadataEncodesLikeTheDirectory) {
  for (const char* text : {"Hello world", "Tell me a fortune.", "  leading spaces and 12345 digits\n\nnew lines",
                           "caf\xc3\xa9 na\xc3\xafve \xe2\x80\x94 unicode", "<|im_start|>user\nhi<|im_end|>",
                           "It's 'quoted' don't", "tabs\tand\r\nCRLF"}) {
    SCOPED_TRACE(text);
    const std::string file = dir_ + "/text.txt";
    std::ofstream(file, std::ios::binary | std::ios::trunc) << text;
    auto want = keel::test::run_keel("tokenize " + kDemo + " --text-file " + file);
    auto got = keel::test::run_keel("tokenize " + path_ + " --text-file " + file);
    ASSERT_EQ(want.exit_code, 0) << want.err;
    ASSERT_EQ(got.exit_code, 0) << got.err;
    EXPECT_EQ(got.out, want.out);
  }
}

TEST_F(DemoGguf, GreedyTokensEqualTransformers) {
  const nlohmann::json g = read_json(kDemo + "/golden.json");
  const auto want = g["greedy_ids"].get<std::vector<int>>();
  auto r = keel::test::run_keel("generate " + path_ + " --tokens \"" + joined(g["prompt_ids"].get<std::vector<int>>()) +
                                "\" --max-tokens " + std::to_string(want.size()) + " --temperature 0 --ignore-eos --ids");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find(joined(want)), std::string::npos) << r.out;
}

TEST_F(DemoGguf, ChatPromptGeneratesLikeTheDirectory) {
  const std::string args = " --prompt \"Tell me a fortune.\" --max-tokens 16 --temperature 0";
  auto want = keel::test::run_keel("generate " + kDemo + args);
  auto got = keel::test::run_keel("generate " + path_ + args);
  ASSERT_EQ(want.exit_code, 0) << want.err;
  ASSERT_EQ(got.exit_code, 0) << got.err;
  EXPECT_EQ(got.out, want.out);
}

TEST_F(DemoGguf, InfoReportsTheFile) {
  auto r = keel::test::run_keel("info " + path_ + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["architecture"], "LlamaForCausalLM");
  EXPECT_EQ(j["tied_embeddings"], true);
}

}  // namespace
