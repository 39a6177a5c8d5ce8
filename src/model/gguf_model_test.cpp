// GGUF files end to end on the CPU oracle: golden models written as GGUF by the test's own writer (llama.cpp's
// names, llama's q/k permutation, gemma's 1 + w norms, metadata instead of config.json) must give transformers'
// logits and greedy tokens in F32, and in Q8_0 exactly the logits of the F32 file of the dequantized weights.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "backend/ops.h"
#include "base/test_util.h"
#include "engine/engine.h"
#include "engine/model_runner.h"
#include "format/npy.h"
#include "format/safetensors.h"
#include "model/gguf_test_util.h"
#include "model/quant_test_util.h"
#include "model/model.h"

namespace keel::model {
namespace {

namespace fs = std::filesystem;
const std::string kGoldenDir = std::string(KEEL_SOURCE_DIR) + "/tests/golden/models/";

struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/keel_gguf_XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string path;
};

nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  return nlohmann::json::parse(f);
}

// Writes golden model `name` as GGUF to `path` (Q8_0 for every matrix whose rows are whole blocks when `q8`);
// `ref_path`, when given, receives the F32 GGUF of the weights the Q8_0 one dequantizes to.
void write_gguf(const std::string& name, const std::string& path, bool q8, const std::string& ref_path = "") {
  const nlohmann::json c = read_json(kGoldenDir + name + "/config.json");
  const std::string type = c["model_type"];
  const std::map<std::string, std::string> arches = {{"llama", "llama"}, {"qwen2", "qwen2"}, {"qwen3", "qwen3"},
                                                     {"qwen3_moe", "qwen3moe"}, {"gemma3_text", "gemma3"}};
  const std::string arch = arches.at(type);
  const bool gemma = arch == "gemma3";
  testing::GgufWriter out, ref;
  const int heads = c["num_attention_heads"], kv_heads = c.value("num_key_value_heads", heads);
  for (testing::GgufWriter* w : {&out, &ref}) {
    w->str("general.architecture", arch);
    w->u32(arch + ".context_length", c["max_position_embeddings"]);
    w->u32(arch + ".embedding_length", c["hidden_size"]);
    w->u32(arch + ".feed_forward_length", c["intermediate_size"]);
    w->u32(arch + ".block_count", c["num_hidden_layers"]);
    w->u32(arch + ".attention.head_count", heads);
    w->u32(arch + ".attention.head_count_kv", kv_heads);
    w->f32(arch + ".attention.layer_norm_rms_epsilon", c["rms_norm_eps"].get<float>());
    if (c.contains("head_dim")) w->u32(arch + ".attention.key_length", c["head_dim"]);
    const nlohmann::json rope = c.contains("rope_parameters") ? c["rope_parameters"] : c;
    const nlohmann::json& full = rope.contains("full_attention") ? rope["full_attention"] : rope;
    w->f32(arch + ".rope.freq_base", full["rope_theta"].get<float>());
    if (c.contains("num_experts") || c.contains("num_local_experts")) {
      w->u32(arch + ".expert_count", c.contains("num_experts") ? c["num_experts"] : c["num_local_experts"]);
      w->u32(arch + ".expert_used_count", c["num_experts_per_tok"]);
      w->u32(arch + ".expert_feed_forward_length", c["moe_intermediate_size"]);
      w->boolean(arch + ".expert_weights_norm", c["norm_topk_prob"]);
    }
    if (gemma) {
      w->u32(arch + ".attention.sliding_window", c["sliding_window"]);
      w->u32(arch + ".attention.sliding_window_pattern", c.value("sliding_window_pattern", 6));
    }
  }
  auto files = format::WeightFiles::open(env::Env::posix(), kGoldenDir + name);
  ASSERT_TRUE(files.ok()) << files.status().message();
  std::map<std::string, std::vector<float>> f32;
  std::map<std::string, std::vector<int64_t>> shapes;
  for (auto& [n, t] : files->all()) {
    f32[n].resize(t->numel());
    to_float(t->dtype, t->data, f32[n].data(), t->numel());
    shapes[n] = t->shape;
  }
  testing::stack_experts(f32, shapes);
  for (auto& [n, v] : f32) {
    const std::string g = testing::gguf_name(n, gemma);
    ASSERT_FALSE(g.empty()) << n;
    std::vector<int64_t> shape = shapes[n];
    std::vector<float> w = v;
    const bool q = n.find("q_proj") != std::string::npos, k = n.find("k_proj") != std::string::npos;
    if (arch == "llama" && (q || k))
      w = testing::llama_permute(w, shape[0], shape.size() > 1 ? shape[1] : 1, q ? heads : kv_heads);
    if (gemma && n.find("norm") != std::string::npos)
      for (float& x : w) x += 1.0f;
    testing::GgufTensorOut t{0, shape, std::string(reinterpret_cast<const char*>(w.data()), w.size() * 4)};
    testing::GgufTensorOut r = t;
    if (q8 && shape.size() >= 2 && shape.back() % 32 == 0 && n.find("norm") == std::string::npos) {
      std::vector<float> deq;
      t = testing::GgufTensorOut{8, shape, testing::quantize_q8_0(w, &deq)};
      r.bytes.assign(reinterpret_cast<const char*>(deq.data()), deq.size() * 4);
    }
    out.tensor(g, t);
    ref.tensor(g, r);
  }
  out.write(path);
  if (!ref_path.empty()) ref.write(ref_path);
}

Result<std::unique_ptr<Model>> load(const std::string& path) {
  static std::vector<std::unique_ptr<backend::Backend>> backends;
  backends.push_back(backend::make_cpu_backend());
  LoadOptions options;
  options.max_batch_tokens = 64;
  options.kv_blocks = 8;
  return Model::load(env::Env::posix(), path, backends.back().get(), options);
}

class GgufFile : public ::testing::TestWithParam<std::string> {};

TEST_P(GgufFile, F32LogitsAndGreedyTokensMatchTransformers) {
  const std::string name = GetParam();
  TempDir dir;
  const std::string path = dir.path + "/model.gguf";
  write_gguf(name, path, false);
  auto m = load(path);
  ASSERT_TRUE(m.ok()) << m.status().message();
  nlohmann::json g = read_json(kGoldenDir + name + "/golden.json");
  const auto tokens = g["tokens"].get<std::vector<int32_t>>();
  auto logits = engine::all_logits(**m, tokens);
  ASSERT_TRUE(logits.ok()) << logits.status().message();
  auto want = format::read_npy(env::Env::posix(), kGoldenDir + name + "/logits.npy");
  ASSERT_TRUE(want.ok());
  const double err = relative_error(*logits, want->data);
  std::printf("[gguf] %-20s F32 logits rel. error to transformers %.3g\n", name.c_str(), err);
  EXPECT_LE(err, 1e-4);
  engine::Engine engine(m->get(), engine::EngineOptions{});
  engine::Request r;
  r.prompt = tokens;
  r.max_tokens = static_cast<int>(g["greedy"].size());
  r.sampling.temperature = 0;
  r.ignore_eos = true;
  auto out = engine.generate(r);
  ASSERT_TRUE(out.ok()) << out.status().message();
  EXPECT_EQ(*out, g["greedy"].get<std::vector<int32_t>>());
}

TEST_P(GgufFile, Q8_0LogitsEqualTheDequantizedF32File) {
  const std::string name = GetParam();
  TempDir dir;
  write_gguf(name, dir.path + "/q8.gguf", true, dir.path + "/ref.gguf");
  auto q = load(dir.path + "/q8.gguf");
  ASSERT_TRUE(q.ok()) << q.status().message();
  auto ref = load(dir.path + "/ref.gguf");
  ASSERT_TRUE(ref.ok()) << ref.status().message();
  EXPECT_EQ((*q)->weights().quant_use.count("Q8_0"), 1u);
  const auto tokens = read_json(kGoldenDir + name + "/golden.json")["tokens"].get<std::vector<int32_t>>();
  auto got = engine::all_logits(**q, tokens);
  ASSERT_TRUE(got.ok()) << got.status().message();
  auto want = engine::all_logits(**ref, tokens);
  ASSERT_TRUE(want.ok()) << want.status().message();
  EXPECT_LE(relative_error(*got, *want), 1e-6);
}

INSTANTIATE_TEST_SUITE_P(Families, GgufFile,
                         ::testing::Values("llama_sharded_f16", "qwen2_tied", "qwen3", "qwen3_moe", "gemma3_v4"));

// tests/golden/gen_quant.py's numpy writers (MLX affine at 3/4/8 bits, GGUF Q8_0/Q4_0/Q4_K/Q5_K/Q6_K and a
// Q4_K_M mix) against keel's C++ readers: each file, read by keel, gives exactly the logits of the F32 model of the
// weights the script's own numpy dequantizers produced. Needs a python3 with numpy (skips without).
TEST(GenQuantWriters, KeelReadsExactlyWhatTheScriptDequantizes) {
  std::string python;
  for (const char* p : {"python3", "/usr/bin/python3"})
    if (python.empty() && std::system((std::string(p) + " -c 'import numpy' 2>/dev/null").c_str()) == 0) python = p;
  if (python.empty()) GTEST_SKIP() << "no python3 with numpy: tests/golden/gen_quant.py's writers not checked";
  TempDir dir;
  const std::string cmd = python + " " + KEEL_SOURCE_DIR + "/tests/golden/gen_quant.py --no-reference --out " +
                          dir.path + " > " + dir.path + "/log.txt 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "gen_quant.py failed; see its self-checks: " << cmd;
  int cases = 0;
  for (const auto& entry : fs::directory_iterator(dir.path)) {
    const std::string d = entry.path().string();
    if (!entry.is_directory() || d.ends_with(".dequantized")) continue;
    SCOPED_TRACE(d);
    const std::string model = fs::exists(d + "/model.gguf") ? d + "/model.gguf" : d;
    auto q = load(model);
    ASSERT_TRUE(q.ok()) << q.status().message();
    auto ref = load(d + ".dequantized");
    ASSERT_TRUE(ref.ok()) << ref.status().message();
    EXPECT_FALSE((*q)->weights().quant_use.empty());
    const auto tokens = read_json(d + "/tokens.json").get<std::vector<int32_t>>();
    auto got = engine::all_logits(**q, tokens);
    ASSERT_TRUE(got.ok()) << got.status().message();
    auto want = engine::all_logits(**ref, tokens);
    ASSERT_TRUE(want.ok()) << want.status().message();
    const double err = relative_error(*got, *want);
    std::printf("[gen_quant] %-22s rel. error to its dequantized F32 model %.3g\n", entry.path().filename().c_str(),
                err);
    EXPECT_LE(err, 1e-6);
    cases++;
  }
  EXPECT_GE(cases, 17);
}

// gen_quant.py's GGUF references: transformers fp32 on the dequantized weights (run on the device).
class GgufGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(GgufGolden, LogitsAndGreedyTokensMatchTransformers) {
  const std::string dir = kGoldenDir + GetParam();
  if (!fs::exists(dir + "/golden.json"))
    GTEST_SKIP() << dir << " is absent: run python3 tests/golden/gen_quant.py --out tests/golden/models on a machine "
                 << "with torch and transformers";
  nlohmann::json g = read_json(dir + "/golden.json");
  auto m = load(dir + "/model.gguf");
  ASSERT_TRUE(m.ok()) << m.status().message();
  const auto tokens = g["tokens"].get<std::vector<int32_t>>();
  auto logits = engine::all_logits(**m, tokens);
  ASSERT_TRUE(logits.ok()) << logits.status().message();
  auto want = format::read_npy(env::Env::posix(), dir + "/logits.npy");
  ASSERT_TRUE(want.ok()) << want.status().message();
  ASSERT_EQ(logits->size(), want->data.size());
  const double err = relative_error(*logits, want->data);
  std::printf("[golden] %-22s logits rel. error %.3g\n", GetParam().c_str(), err);
  EXPECT_LE(err, 1e-4);
  engine::Engine engine(m->get(), engine::EngineOptions{});
  engine::Request r;
  r.prompt = tokens;
  r.max_tokens = static_cast<int>(g["greedy"].size());
  r.sampling.temperature = 0;
  r.ignore_eos = true;
  auto out = engine.generate(r);
  ASSERT_TRUE(out.ok()) << out.status().message();
  EXPECT_EQ(*out, g["greedy"].get<std::vector<int32_t>>());
}

INSTANTIATE_TEST_SUITE_P(Formats, GgufGolden,
                         ::testing::Values("llama_q8_0", "qwen2_tied_q4_0", "qwen3_q8_0", "qwen3_moe_q4_0",
                                           "gemma3_q8_0", "k_llama_q4_k", "k_llama_q5_k", "k_llama_q6_k",
                                           "k_llama_q4_k_m", "k_qwen3_moe_q4_k_m"));

TEST(GgufErrors, UnknownArchitectureIsNamed) {
  TempDir dir;
  testing::GgufWriter w;
  w.str("general.architecture", "mamba");
  w.tensor("token_embd.weight", testing::GgufTensorOut{0, {4, 32}, std::string(4 * 32 * 4, '\0')});
  w.write(dir.path + "/m.gguf");
  auto m = load(dir.path + "/m.gguf");
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("'mamba'"), std::string::npos) << m.status().message();
  EXPECT_NE(m.status().message().find("qwen3moe"), std::string::npos) << m.status().message();
}

TEST(GgufErrors, UnsupportedTensorTypeIsNamedWithTheSupportedOnes) {
  TempDir dir;
  testing::GgufWriter w;
  w.str("general.architecture", "llama");
  w.tensor("token_embd.weight", testing::GgufTensorOut{3, {4, 32}, std::string(4 * 20, '\0')});  // Q4_1
  w.write(dir.path + "/m.gguf");
  auto m = load(dir.path + "/m.gguf");
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("token_embd.weight"), std::string::npos) << m.status().message();
  EXPECT_NE(m.status().message().find("Q4_K"), std::string::npos) << m.status().message();
}

}  // namespace
}  // namespace keel::model
