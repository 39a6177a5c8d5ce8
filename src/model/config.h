// ModelConfig: everything the forward pass needs to know about a model, parsed from a Hugging Face
// config.json in either the transformers 4.x style (rope_theta + rope_scaling) or the 5.x style
// (rope_parameters, possibly per layer type). Family quirks become plain fields here, so the forward pass
// is written once.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "base/status.h"
#include "env/env.h"

namespace keel::model {

// kQwen3Next, kQwen3_5, kQwen3_5Moe: hybrid models (model/hybrid_config.h), most layers Gated DeltaNet.
enum class Arch { kLlama, kMistral, kQwen2, kQwen3, kQwen3Moe, kGemma3, kQwen3Next, kQwen3_5, kQwen3_5Moe };
enum class RopeType { kDefault, kLinear, kDynamic, kLlama3, kYarn };
enum class Activation { kSilu, kGeluTanh };

const char* arch_name(Arch arch);
const char* rope_type_name(RopeType type);

struct RopeConfig {
  RopeType type = RopeType::kDefault;
  double theta = 10000.0;
  double factor = 1.0;
  double partial_rotary_factor = 1.0;
  // llama3
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int original_max_position_embeddings = 0;
  // yarn
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  bool truncate = true;
  double attention_factor = 0.0;  // 0: derived from factor/mscale
  double mscale = 0.0;
  double mscale_all_dim = 0.0;
};

struct LayerSpec {
  bool sliding = false;  // attends to the last `sliding_window` positions only
  bool moe = false;      // sparse MoE MLP instead of the dense one
  bool linear = false;   // Gated DeltaNet linear attention (a recurrent state) instead of attention (hybrid models)
};

// The Gated DeltaNet layers of a hybrid model (Qwen3-Next, Qwen3.5): projections to q/k (num_k_heads x
// k_head_dim each), v and z (num_v_heads x v_head_dim), b and a (num_v_heads), a causal depthwise conv over q|k|v
// and the gated delta rule's state of num_v_heads x k_head_dim x v_head_dim per sequence.
struct LinearAttnConfig {
  int num_k_heads = 0;
  int num_v_heads = 0;
  int k_head_dim = 0;
  int v_head_dim = 0;
  int conv_kernel = 0;
  bool fused_qkvz = false;  // qwen3_next's in_proj_qkvz / in_proj_ba, interleaved per key-head group

  int key_dim() const { return num_k_heads * k_head_dim; }
  int value_dim() const { return num_v_heads * v_head_dim; }
  int conv_dim() const { return 2 * key_dim() + value_dim(); }
  // Floats of one sequence's state in one layer: the conv's last conv_kernel-1 inputs and the delta-rule state.
  int64_t conv_state_floats() const { return static_cast<int64_t>(conv_kernel - 1) * conv_dim(); }
  int64_t ssm_state_floats() const { return static_cast<int64_t>(num_v_heads) * k_head_dim * v_head_dim; }
};

// MLX affine quantization as config.json states it (mlx-lm writes `quantization` and a copy as
// `quantization_config`): a default and per-module entries, each either its own {group_size, bits} or false
// (the module is stored unquantized).
struct MlxQuantParams {
  int bits = 0;
  int group_size = 0;
};
struct Quantization {
  bool mlx = false;  // config asks for MLX affine weights
  MlxQuantParams defaults;
  std::map<std::string, std::optional<MlxQuantParams>> modules;  // "model.layers.0.mlp.down_proj" -> params | false
  // The parameters of `module` (a weight's name without ".weight"); nullopt when config marks it false.
  std::optional<MlxQuantParams> for_module(const std::string& module) const;
};

struct ModelConfig {
  std::string architecture;  // "LlamaForCausalLM"
  Arch arch = Arch::kLlama;
  std::string dtype;  // as config.json states it ("bfloat16"), informational

  int vocab_size = 0;
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int max_position_embeddings = 0;
  float rms_norm_eps = 1e-6f;
  bool tie_word_embeddings = false;

  bool qkv_bias = false;     // qwen2 always; llama/qwen3/gemma3 with attention_bias
  bool o_bias = false;       // llama/qwen3/gemma3 with attention_bias
  bool mlp_bias = false;     // llama mlp_bias
  bool qk_norm = false;      // qwen3, qwen3_moe, gemma3: RMSNorm over head_dim before rope
  bool norm_add_one = false; // gemma: y = x_hat * (1 + w)
  bool sandwich_norms = false;  // gemma3: post-attention and pre/post-feedforward norms
  float embed_scale = 1.0f;  // gemma: sqrt(hidden_size), rounded to the weights' dtype
  float attn_scale = 0.0f;   // 1/sqrt(head_dim), or 1/sqrt(query_pre_attn_scalar)
  float attn_softcap = 0.0f;   // 0 = off
  float final_softcap = 0.0f;  // 0 = off
  Activation activation = Activation::kSilu;
  int sliding_window = 0;  // 0 = no sliding layers

  RopeConfig rope;        // full-attention layers
  RopeConfig rope_local;  // sliding layers (gemma3's rope_local_base_freq); equals rope elsewhere

  // MoE (qwen3_moe)
  int num_experts = 0;
  int num_experts_per_tok = 0;
  int moe_intermediate_size = 0;
  bool norm_topk_prob = false;
  int shared_expert_intermediate_size = 0;  // >0: a shared expert beside the routed ones, gated by a sigmoid

  // Hybrid models.
  LinearAttnConfig linear;
  bool attn_output_gate = false;  // q_proj is doubled: per head q then a gate; out = attn * sigmoid(gate)
  // Where the language model's tensors start: "model." ("model.language_model." in a multimodal checkpoint).
  std::string weight_prefix = "model.";

  Quantization quantization;

  std::vector<LayerSpec> layers;
  int bos_token_id = -1;
  std::vector<int> eos_token_ids;

  bool hybrid() const { return linear.num_v_heads > 0; }
  int num_linear_layers() const {
    int n = 0;
    for (auto& l : layers) n += l.linear;
    return n;
  }
  int rotary_dim() const { return static_cast<int>(head_dim * rope.partial_rotary_factor); }
  int q_size() const { return num_heads * head_dim; }
  int kv_size() const { return num_kv_heads * head_dim; }
};

// config.json's `quantization` / `quantization_config` (MLX affine), or an error naming a method keel does not
// read (AWQ, GPTQ, FP8, ...) and what it does.
Status parse_quantization(const nlohmann::json& j, const std::string& where, Quantization* out);

// Parses config.json text; `where` names the file in error messages.
Result<ModelConfig> parse_config(const std::string& json_text, const std::string& where);
// `model_dir`'s config.json, or the metadata of a .gguf file given instead of a directory.
Result<ModelConfig> load_config(env::Env* env, const std::string& model_dir);

}  // namespace keel::model
