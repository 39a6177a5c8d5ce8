// MLX affine checkpoints end to end on the CPU oracle: golden models quantized by the test's own MLX quantizer
// (quant_test_util.h) must give exactly the logits of the same model stored as the f32 weights MLX's format
// dequantizes to; the transformers references of tests/golden/gen_quant.py are checked when present.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <regex>

#include "backend/ops.h"
#include "base/test_util.h"
#include "engine/engine.h"
#include "engine/model_runner.h"
#include "format/npy.h"
#include "format/safetensors.h"
#include "model/model.h"
#include "model/quant_test_util.h"

namespace keel::model {
namespace {

namespace fs = std::filesystem;
using testing::RawTensor;
const std::string kGoldenDir = std::string(KEEL_SOURCE_DIR) + "/tests/golden/models/";

struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/keel_quant_XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string path;
};

nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  return nlohmann::json::parse(f);
}

struct Plan {
  int bits = 4, group = 64;
  // module -> {bits, group}, or {0, 0} for false (stored unquantized)
  std::map<std::string, std::pair<int, int>> modules;
  bool stack_experts = true;  // mlx-lm's switch_mlp layout
};

// Writes `name` quantized per `plan` into `qdir` and the f32 weights it dequantizes to into `refdir`.
void write_pair(const std::string& name, const Plan& plan, const std::string& qdir, const std::string& refdir) {
  auto file = format::SafetensorsFile::open(env::Env::posix(), kGoldenDir + name + "/model.safetensors");
  ASSERT_TRUE(file.ok()) << file.status().message();
  std::map<std::string, std::vector<float>> f32;
  std::map<std::string, std::vector<int64_t>> shapes;
  for (auto& [n, t] : (*file)->tensors()) {
    f32[n].resize(t.numel());
    to_float(t.dtype, t.data, f32[n].data(), t.numel());
    shapes[n] = t.shape;
  }
  if (plan.stack_experts) testing::stack_experts(f32, shapes);
  std::map<std::string, RawTensor> quantized, reference;
  for (auto& [n, v] : f32) {
    const std::vector<int64_t>& shape = shapes[n];
    const std::string module = n.size() > 7 ? n.substr(0, n.size() - 7) : n;
    int bits = plan.bits, group = plan.group;
    if (auto it = plan.modules.find(module); it != plan.modules.end()) bits = it->second.first, group = it->second.second;
    const bool quantize = shape.size() >= 2 && n.find("norm") == std::string::npos && bits > 0 &&
                          shape.back() % group == 0;
    if (!quantize) {
      quantized[n] = reference[n] = testing::f32_tensor(v, shape);
      continue;
    }
    testing::MlxQuantized q = testing::mlx_quantize(v, shape, bits, group);
    quantized[n] = q.weight;
    quantized[module + ".scales"] = q.scales;
    quantized[module + ".biases"] = q.biases;
    reference[n] = testing::f32_tensor(q.dequantized, shape);
  }
  testing::write_safetensors(qdir + "/model.safetensors", quantized);
  testing::write_safetensors(refdir + "/model.safetensors", reference);
  nlohmann::json config = read_json(kGoldenDir + name + "/config.json");
  std::ofstream(refdir + "/config.json") << config.dump(2);
  nlohmann::json q = {{"group_size", plan.group}, {"bits", plan.bits}};
  for (auto& [module, p] : plan.modules) {
    if (p.first == 0) q[module] = false;
    else q[module] = {{"group_size", p.second}, {"bits", p.first}};
  }
  config["quantization"] = q;
  config["quantization_config"] = q;
  std::ofstream(qdir + "/config.json") << config.dump(2);
}

Result<std::unique_ptr<Model>> load(const std::string& dir) {
  static std::vector<std::unique_ptr<backend::Backend>> backends;  // outlive the models of one test
  backends.push_back(backend::make_cpu_backend());
  LoadOptions options;
  options.max_batch_tokens = 64;
  options.kv_blocks = 8;
  return Model::load(env::Env::posix(), dir, backends.back().get(), options);
}

std::vector<int32_t> golden_tokens(const std::string& name) {
  return read_json(kGoldenDir + name + "/golden.json")["tokens"].get<std::vector<int32_t>>();
}

struct Case {
  const char* model;
  Plan plan;
};

class MlxCheckpoint : public ::testing::TestWithParam<Case> {};

TEST_P(MlxCheckpoint, LogitsEqualTheDequantizedF32Model) {
  const Case& c = GetParam();
  TempDir q, ref;
  write_pair(c.model, c.plan, q.path, ref.path);
  auto quantized = load(q.path);
  ASSERT_TRUE(quantized.ok()) << quantized.status().message();
  auto reference = load(ref.path);
  ASSERT_TRUE(reference.ok()) << reference.status().message();
  EXPECT_FALSE((*quantized)->weights().quant.empty());
  EXPECT_LT((*quantized)->weights().bytes, (*reference)->weights().bytes);
  const std::vector<int32_t> tokens = golden_tokens(c.model);
  auto got = engine::all_logits(**quantized, tokens);
  ASSERT_TRUE(got.ok()) << got.status().message();
  auto want = engine::all_logits(**reference, tokens);
  ASSERT_TRUE(want.ok()) << want.status().message();
  const double err = relative_error(*got, *want);
  std::printf("[mlx] %-12s %d-bit g%d: rel. error to the dequantized f32 model %.3g\n", c.model, c.plan.bits,
              c.plan.group, err);
  EXPECT_LE(err, 1e-6);
}

INSTANTIATE_TEST_SUITE_P(
    Families, MlxCheckpoint,
    ::testing::Values(
        // Overrides: layer 0's q_proj at 8 bits g32, its v_proj stored unquantized (false), down_proj at g32.
        Case{"qwen3", Plan{4, 64, {{"model.layers.0.self_attn.q_proj", {8, 32}},
                                   {"model.layers.0.self_attn.v_proj", {0, 0}},
                                   {"model.layers.1.mlp.down_proj", {6, 32}}}}},
        Case{"qwen2_tied", Plan{3, 64, {}}},     // the tied head reads the quantized embedding
        Case{"llama3_v4", Plan{5, 32, {}}},
        Case{"gemma3", Plan{2, 32, {}}},
        Case{"qwen3_moe", Plan{8, 32, {}}},      // switch_mlp experts, stacked [E, ...]
        Case{"qwen3_moe_sparse2_v4", Plan{4, 32, {}}}),
    [](const ::testing::TestParamInfo<Case>& info) {
      return std::string(info.param.model) + "_" + std::to_string(info.param.plan.bits) + "bit";
    });

Status load_status(const std::string& dir) {
  auto m = load(dir);
  return m.ok() ? Status() : m.status();
}

void rewrite_config(const std::string& dir, const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json j = read_json(dir + "/config.json");
  edit(j);
  std::ofstream(dir + "/config.json") << j.dump(2);
}

TEST(MlxCheckpointErrors, UnsupportedBitsNameTheSupportedOnes) {
  TempDir q, ref;
  write_pair("qwen3", Plan{}, q.path, ref.path);
  rewrite_config(q.path, [](nlohmann::json& j) { j["quantization"]["bits"] = 7; });
  Status s = load_status(q.path);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("bits=7"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("2, 3, 4, 5, 6, 8"), std::string::npos) << s.message();
}

TEST(MlxCheckpointErrors, BitsDisagreeingWithThePackedShapeNameTheTensor) {
  TempDir q, ref;
  write_pair("qwen3", Plan{}, q.path, ref.path);
  rewrite_config(q.path, [](nlohmann::json& j) { j["quantization"]["bits"] = 8; });
  Status s = load_status(q.path);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("model.embed_tokens.weight"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("U32 [256, 16]"), std::string::npos) << s.message();
}

TEST(MlxCheckpointErrors, PackedWeightsWithoutAQuantizationEntryAreRefused) {
  TempDir q, ref;
  write_pair("qwen3", Plan{}, q.path, ref.path);
  rewrite_config(q.path, [](nlohmann::json& j) { j.erase("quantization"), j.erase("quantization_config"); });
  Status s = load_status(q.path);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("no quantization entry"), std::string::npos) << s.message();
}

TEST(MlxCheckpointErrors, OtherQuantMethodsAreNamedAsUnsupported) {
  TempDir q, ref;
  write_pair("qwen3", Plan{}, ref.path, q.path);  // q.path: the f32 one
  rewrite_config(q.path, [](nlohmann::json& j) { j["quantization_config"] = {{"quant_method", "awq"}, {"bits", 4}}; });
  Status s = load_status(q.path);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("\"awq\""), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("MLX affine"), std::string::npos) << s.message();
}

// tests/golden/gen_quant.py's references: transformers fp32 on the dequantized weights (run on the device).
class MlxGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(MlxGolden, LogitsAndGreedyTokensMatchTransformers) {
  const std::string dir = kGoldenDir + GetParam();
  if (!fs::exists(dir + "/golden.json"))
    GTEST_SKIP() << dir << " is absent: run python3 tests/golden/gen_quant.py --out tests/golden/models on a machine "
                 << "with torch and transformers";
  nlohmann::json g = read_json(dir + "/golden.json");
  auto m = load(dir);
  ASSERT_TRUE(m.ok()) << m.status().message();
  const auto tokens = g["tokens"].get<std::vector<int32_t>>();
  auto logits = engine::all_logits(**m, tokens);
  ASSERT_TRUE(logits.ok()) << logits.status().message();
  auto want = format::read_npy(env::Env::posix(), dir + "/logits.npy");
  ASSERT_TRUE(want.ok()) << want.status().message();
  ASSERT_EQ(logits->size(), want->data.size());
  const double err = relative_error(*logits, want->data);
  std::printf("[golden] %-26s logits rel. error %.3g\n", GetParam().c_str(), err);
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

INSTANTIATE_TEST_SUITE_P(Formats, MlxGolden,
                         ::testing::Values("qwen3_mlx4", "qwen3_mlx8", "qwen3_mlx3", "qwen3_moe_mlx4",
                                           "gemma3_mlx4", "llama3_v4_mlx4", "qwen2_tied_mlx8"));

}  // namespace
}  // namespace keel::model
