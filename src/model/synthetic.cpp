#include "model/synthetic.h"

#include <cmath>

namespace keel::model {

namespace {

ModelConfig dense(Arch arch, const char* architecture, int vocab, int hidden, int inter, int layers, int heads,
                  int kv_heads, int head_dim, double theta) {
  ModelConfig c;
  c.arch = arch;
  c.architecture = architecture;
  c.dtype = "bfloat16";
  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.intermediate_size = inter;
  c.num_layers = layers;
  c.num_heads = heads;
  c.num_kv_heads = kv_heads;
  c.head_dim = head_dim;
  c.max_position_embeddings = 8192;
  c.rope.theta = theta;
  c.rope_local = c.rope;
  c.attn_scale = static_cast<float>(1.0 / std::sqrt(head_dim));
  c.layers.assign(layers, LayerSpec{});
  c.qk_norm = arch == Arch::kQwen3 || arch == Arch::kQwen3Moe;
  return c;
}

// A hybrid model (Qwen3-Next / Qwen3.5-MoE shape): three linear-attention layers in four, the fourth gated full
// attention with a quarter of head_dim rotary; MoE with a shared expert on every layer.
ModelConfig hybrid_moe(Arch arch, const char* architecture, int vocab, int hidden, int layers, int experts, int top_k,
                       int expert_inter, int heads, int kv_heads, int head_dim, LinearAttnConfig linear) {
  ModelConfig c = dense(arch, architecture, vocab, hidden, expert_inter, layers, heads, kv_heads, head_dim, 10000000.0);
  c.qk_norm = true;
  c.norm_add_one = true;
  c.attn_output_gate = true;
  c.rope.partial_rotary_factor = 0.25;
  c.rope_local = c.rope;
  c.linear = linear;
  c.linear.fused_qkvz = arch == Arch::kQwen3Next;
  c.num_experts = experts;
  c.num_experts_per_tok = top_k;
  c.moe_intermediate_size = expert_inter;
  c.shared_expert_intermediate_size = expert_inter;
  c.norm_topk_prob = true;
  for (int i = 0; i < layers; i++) {
    c.layers[i].moe = true;
    c.layers[i].linear = (i + 1) % 4 != 0;
  }
  return c;
}

}  // namespace

std::vector<std::string> synthetic_names() {
  return {"llama-tiny", "llama-100m", "llama3-8b", "llama3-70b", "qwen3-8b", "qwen3-30b-a3b",
          "qwen3-next-tiny", "qwen3.5-35b-a3b", "qwen3-next-80b-a3b"};
}

Result<ModelConfig> synthetic_config(const std::string& name) {
  // Two layers and a 32k context: a 32k-token prefill takes minutes, not hours, on two CPU cores (keel bench
  // cache's CPU default, where what is measured is moving KV, not computing it).
  if (name == "llama-tiny") {
    ModelConfig c = dense(Arch::kLlama, "LlamaForCausalLM", 4096, 128, 256, 2, 2, 1, 64, 500000.0);
    c.max_position_embeddings = 32768 + 1024;
    return c;
  }
  if (name == "llama-100m")  // a ~125M-parameter llama: the CPU benchmark's default
    return dense(Arch::kLlama, "LlamaForCausalLM", 32000, 768, 2048, 12, 12, 4, 64, 10000.0);
  if (name == "llama3-8b")
    return dense(Arch::kLlama, "LlamaForCausalLM", 128256, 4096, 14336, 32, 32, 8, 128, 500000.0);
  // 70B-class: 141 GB of bf16 weights, more than one 80 GB GPU holds; 70.6 GB a rank at --tensor-parallel 2.
  if (name == "llama3-70b")
    return dense(Arch::kLlama, "LlamaForCausalLM", 128256, 8192, 28672, 80, 64, 8, 128, 500000.0);
  if (name == "qwen3-8b")
    return dense(Arch::kQwen3, "Qwen3ForCausalLM", 151936, 4096, 12288, 36, 32, 8, 128, 1000000.0);
  if (name == "qwen3-30b-a3b") {
    ModelConfig c = dense(Arch::kQwen3Moe, "Qwen3MoeForCausalLM", 151936, 2048, 6144, 48, 32, 4, 128, 1000000.0);
    c.num_experts = 128;
    c.num_experts_per_tok = 8;
    c.moe_intermediate_size = 768;
    c.norm_topk_prob = true;
    for (auto& l : c.layers) l.moe = true;
    return c;
  }
  // Hybrid shapes (CPU backend only for now: docs/MODELS.md). -tiny is for tests of the serving path.
  if (name == "qwen3-next-tiny")
    return hybrid_moe(Arch::kQwen3Next, "Qwen3NextForCausalLM", 4096, 128, 4, 8, 2, 64, 4, 2, 64,
                      LinearAttnConfig{2, 4, 32, 32, 4, false});
  if (name == "qwen3.5-35b-a3b")
    return hybrid_moe(Arch::kQwen3_5Moe, "Qwen3_5MoeForConditionalGeneration", 248320, 2048, 40, 256, 8, 512, 16, 2,
                      256, LinearAttnConfig{16, 32, 128, 128, 4, false});
  if (name == "qwen3-next-80b-a3b")
    return hybrid_moe(Arch::kQwen3Next, "Qwen3NextForCausalLM", 151936, 2048, 48, 512, 10, 512, 16, 2, 256,
                      LinearAttnConfig{16, 32, 128, 128, 4, false});
  std::string known;
  for (auto& n : synthetic_names()) known += (known.empty() ? "" : ", ") + n;
  return invalid_argument("--synthetic {}: unknown shape (expected one of {})", name, known);
}

}  // namespace keel::model
