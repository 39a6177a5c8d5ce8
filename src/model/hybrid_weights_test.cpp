// A hybrid checkpoint on disk whose every element names its tensor, row and column: binding it must put each
// checkpoint row where transformers' reshapes put it (Qwen3-Next's per-key-head-group in_proj_qkvz/ba, the
// per-head query/gate halves of q_proj, conv1d's [channels, 1, kernel]) and read a multimodal Qwen3.5 checkpoint's
// text weights under model.language_model.*.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>

#include "backend/cpu/cpu_backend.h"
#include "model/quant_test_util.h"
#include "model/weights.h"

namespace keel::model {
namespace {

using testing::RawTensor;

// Qwen3-Next: 2 key heads of 2, 4 value heads of 3 (2 per key head), conv kernel 3; layer 0 linear, 1 full.
constexpr int kNk = 2, kNv = 4, kDk = 2, kDv = 3, kK = 3, kHidden = 4, kHeads = 2, kHeadDim = 4;

const char* kNextConfig = R"({"architectures": ["Qwen3NextForCausalLM"], "vocab_size": 8, "hidden_size": 4,
  "intermediate_size": 5, "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
  "head_dim": 4, "partial_rotary_factor": 0.5, "layer_types": ["linear_attention", "full_attention"], "linear_num_key_heads": 2,
  "linear_num_value_heads": 4, "linear_key_head_dim": 2, "linear_value_head_dim": 3, "linear_conv_kernel_dim": 3,
  "num_experts": 2, "num_experts_per_tok": 1, "moe_intermediate_size": 2, "shared_expert_intermediate_size": 3,
  "rope_theta": 10000})";

// Element [row][col] of the i-th tensor written: i * 10000 + row * 100 + col (exact in f32).
float code(int tensor, int64_t row, int64_t col) { return static_cast<float>(tensor * 10000 + row * 100 + col); }

struct Checkpoint {
  std::map<std::string, RawTensor> tensors;
  std::map<std::string, int> index;
  void add(const std::string& name, std::vector<int64_t> shape) {
    const int id = static_cast<int>(index.size());
    index[name] = id;
    const int64_t cols = shape.back(), rows = [&] {
      int64_t n = 1;
      for (size_t i = 0; i + 1 < shape.size(); i++) n *= shape[i];
      return n;
    }();
    std::vector<float> v;
    for (int64_t r = 0; r < rows; r++)
      for (int64_t c = 0; c < cols; c++) v.push_back(code(id, r, c));
    tensors[name] = testing::f32_tensor(v, shape);
  }
};

void add_layer_common(Checkpoint& ck, const std::string& p) {
  ck.add(p + "input_layernorm.weight", {kHidden});
  ck.add(p + "post_attention_layernorm.weight", {kHidden});
  ck.add(p + "mlp.gate.weight", {2, kHidden});
  for (int e = 0; e < 2; e++) {
    const std::string x = p + "mlp.experts." + std::to_string(e) + ".";
    ck.add(x + "gate_proj.weight", {2, kHidden});
    ck.add(x + "up_proj.weight", {2, kHidden});
    ck.add(x + "down_proj.weight", {kHidden, 2});
  }
  ck.add(p + "mlp.shared_expert.gate_proj.weight", {3, kHidden});
  ck.add(p + "mlp.shared_expert.up_proj.weight", {3, kHidden});
  ck.add(p + "mlp.shared_expert.down_proj.weight", {kHidden, 3});
  ck.add(p + "mlp.shared_expert_gate.weight", {1, kHidden});
}

float at(const backend::Tensor& t, int64_t r, int64_t c) { return static_cast<const float*>(t.data)[r * t.cols + c]; }

TEST(HybridWeights, Qwen3NextLayoutsAreReorderedFromTheCheckpoint) {
  const std::string dir = std::filesystem::temp_directory_path() / ("keel_hybrid_w_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const int kd = kNk * kDk, vd = kNv * kDv, r = kNv / kNk, group = 2 * kDk + 2 * r * kDv;
  Checkpoint ck;
  ck.add("model.embed_tokens.weight", {8, kHidden});
  ck.add("model.norm.weight", {kHidden});
  ck.add("lm_head.weight", {8, kHidden});
  add_layer_common(ck, "model.layers.0.");
  const std::string la = "model.layers.0.linear_attn.";
  ck.add(la + "in_proj_qkvz.weight", {kNk * group, kHidden});
  ck.add(la + "in_proj_ba.weight", {2 * kNv, kHidden});
  ck.add(la + "conv1d.weight", {2 * kd + vd, 1, kK});
  ck.add(la + "A_log", {kNv});
  ck.add(la + "dt_bias", {kNv});
  ck.add(la + "norm.weight", {kDv});
  ck.add(la + "out_proj.weight", {kHidden, vd});
  add_layer_common(ck, "model.layers.1.");
  const std::string sa = "model.layers.1.self_attn.";
  ck.add(sa + "q_proj.weight", {2 * kHeads * kHeadDim, kHidden});
  ck.add(sa + "k_proj.weight", {kHeadDim, kHidden});
  ck.add(sa + "v_proj.weight", {kHeadDim, kHidden});
  ck.add(sa + "o_proj.weight", {kHidden, kHeads * kHeadDim});
  ck.add(sa + "q_norm.weight", {kHeadDim});
  ck.add(sa + "k_norm.weight", {kHeadDim});
  testing::write_safetensors(dir + "/model.safetensors", ck.tensors);

  auto config = parse_config(kNextConfig, "config.json");
  ASSERT_TRUE(config.ok()) << config.status().message();
  auto files = format::WeightFiles::open(env::Env::posix(), dir);
  ASSERT_TRUE(files.ok()) << files.status().message();
  backend::CpuBackend cpu;
  auto w = bind_weights(*config, *files, &cpu);
  ASSERT_TRUE(w.ok()) << w.status().message();
  const LayerWeights& L0 = w->layers[0];
  const LayerWeights& L1 = w->layers[1];

  // transformers: view(num_k_heads, 2*dk + 2*r*dv), split [dk, dk, r*dv, r*dv], then the heads in group order.
  const int qkvz = ck.index[la + "in_proj_qkvz.weight"];
  auto qkvz_row = [&](int part, int i) {  // part 0 q, 1 k (i over key_dim), 2 v, 3 z (i over value_dim)
    const int width = part < 2 ? kDk : r * kDv, g = i / width, j = i % width;
    const int offset = part == 0 ? 0 : part == 1 ? kDk : part == 2 ? 2 * kDk : 2 * kDk + r * kDv;
    return g * group + offset + j;
  };
  ASSERT_EQ(L0.lin_qkv.rows, 2 * kd + vd);
  for (int i = 0; i < kd; i++) EXPECT_EQ(at(L0.lin_qkv, i, 1), code(qkvz, qkvz_row(0, i), 1)) << "q row " << i;
  for (int i = 0; i < kd; i++) EXPECT_EQ(at(L0.lin_qkv, kd + i, 2), code(qkvz, qkvz_row(1, i), 2)) << "k row " << i;
  for (int i = 0; i < vd; i++) EXPECT_EQ(at(L0.lin_qkv, 2 * kd + i, 3), code(qkvz, qkvz_row(2, i), 3)) << "v " << i;
  for (int i = 0; i < vd; i++) EXPECT_EQ(at(L0.lin_z, i, 0), code(qkvz, qkvz_row(3, i), 0)) << "z row " << i;
  const int ba = ck.index[la + "in_proj_ba.weight"];
  for (int h = 0; h < kNv; h++) {  // view(num_k_heads, 2*r), split [r, r]
    EXPECT_EQ(at(L0.lin_b, h, 0), code(ba, (h / r) * 2 * r + h % r, 0)) << "b " << h;
    EXPECT_EQ(at(L0.lin_a, h, 0), code(ba, (h / r) * 2 * r + r + h % r, 0)) << "a " << h;
  }
  const int conv = ck.index[la + "conv1d.weight"];
  EXPECT_EQ(L0.lin.conv.rows, 2 * kd + vd);
  EXPECT_EQ(L0.lin.conv.cols, kK);
  EXPECT_EQ(at(L0.lin.conv, 7, 2), code(conv, 7, 2));
  // q_proj: view(heads, 2*head_dim), chunk: each head's query then its gate.
  const int q = ck.index[sa + "q_proj.weight"];
  for (int h = 0; h < kHeads; h++)
    for (int d = 0; d < kHeadDim; d++) {
      EXPECT_EQ(at(L1.q, h * kHeadDim + d, 1), code(q, h * 2 * kHeadDim + d, 1));
      EXPECT_EQ(at(L1.attn_gate, h * kHeadDim + d, 1), code(q, h * 2 * kHeadDim + kHeadDim + d, 1));
    }
  EXPECT_EQ(at(L1.shared_expert_gate, 0, 3), code(ck.index["model.layers.1.mlp.shared_expert_gate.weight"], 0, 3));
  EXPECT_TRUE(L1.lin_qkv.empty());
  EXPECT_TRUE(L0.q.empty());
  std::filesystem::remove_all(dir);
}

TEST(HybridWeights, Qwen3_5TextWeightsAreReadUnderLanguageModel) {
  const std::string dir = std::filesystem::temp_directory_path() / ("keel_hybrid_w35_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  Checkpoint ck;
  const std::string m = "model.language_model.";
  ck.add(m + "embed_tokens.weight", {8, kHidden});
  ck.add(m + "norm.weight", {kHidden});
  ck.add("model.visual.patch_embed.proj.weight", {4, 4});  // a vision tower, skipped
  const std::string p = m + "layers.0.";
  ck.add(p + "input_layernorm.weight", {kHidden});
  ck.add(p + "post_attention_layernorm.weight", {kHidden});
  ck.add(p + "mlp.gate_proj.weight", {5, kHidden});
  ck.add(p + "mlp.up_proj.weight", {5, kHidden});
  ck.add(p + "mlp.down_proj.weight", {kHidden, 5});
  const std::string la = p + "linear_attn.";
  ck.add(la + "in_proj_qkv.weight", {2 * kNk * kDk + kNv * kDv, kHidden});
  ck.add(la + "in_proj_z.weight", {kNv * kDv, kHidden});
  ck.add(la + "in_proj_b.weight", {kNv, kHidden});
  ck.add(la + "in_proj_a.weight", {kNv, kHidden});
  ck.add(la + "conv1d.weight", {2 * kNk * kDk + kNv * kDv, 1, kK});
  ck.add(la + "A_log", {kNv});
  ck.add(la + "dt_bias", {kNv});
  ck.add(la + "norm.weight", {kDv});
  ck.add(la + "out_proj.weight", {kHidden, kNv * kDv});
  testing::write_safetensors(dir + "/model.safetensors", ck.tensors);
  auto config = parse_config(R"({"architectures": ["Qwen3_5ForConditionalGeneration"], "tie_word_embeddings": true,
    "text_config": {"vocab_size": 8, "hidden_size": 4, "intermediate_size": 5, "num_hidden_layers": 1,
      "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 4, "partial_rotary_factor": 0.5,
      "layer_types": ["linear_attention"],
      "linear_num_key_heads": 2, "linear_num_value_heads": 4, "linear_key_head_dim": 2,
      "linear_value_head_dim": 3, "linear_conv_kernel_dim": 3, "tie_word_embeddings": false}})", "config.json");
  ASSERT_TRUE(config.ok()) << config.status().message();
  auto files = format::WeightFiles::open(env::Env::posix(), dir);
  ASSERT_TRUE(files.ok()) << files.status().message();
  backend::CpuBackend cpu;
  auto w = bind_weights(*config, *files, &cpu);
  ASSERT_TRUE(w.ok()) << w.status().message();
  EXPECT_EQ(w->lm_head.data, w->embed.data);  // tied by the wrapper's flag
  EXPECT_EQ(at(w->layers[0].lin_z, 2, 1), code(ck.index[la + "in_proj_z.weight"], 2, 1));
  EXPECT_EQ(at(w->layers[0].lin_a, 3, 0), code(ck.index[la + "in_proj_a.weight"], 3, 0));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace keel::model
