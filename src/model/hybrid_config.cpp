#include "model/hybrid_config.h"

#include <nlohmann/json.hpp>

namespace keel::model {

using nlohmann::json;

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// An optional positive integer field, else `fallback` (Qwen3NextConfig's defaults).
Status get_positive(const json& j, const std::string& where, const char* key, int fallback, int* out) {
  *out = fallback;
  if (!j.contains(key) || j[key].is_null()) return Status();
  if (!j[key].is_number_integer() || j[key].get<int64_t>() <= 0 || j[key].get<int64_t>() > (1 << 20))
    return invalid_argument("{}: {} must be a positive integer, got {}", where, key, j[key].dump());
  *out = j[key].get<int>();
  return Status();
}

}  // namespace

std::optional<Arch> hybrid_arch(const std::string& a, const std::string& model_type) {
  if (a == "Qwen3NextForCausalLM" || (a.empty() && model_type == "qwen3_next")) return Arch::kQwen3Next;
  if (a == "Qwen3_5ForConditionalGeneration" || a == "Qwen3_5ForCausalLM" ||
      (a.empty() && (model_type == "qwen3_5" || model_type == "qwen3_5_text")))
    return Arch::kQwen3_5;
  if (a == "Qwen3_5MoeForConditionalGeneration" || a == "Qwen3_5MoeForCausalLM" ||
      (a.empty() && (model_type == "qwen3_5_moe" || model_type == "qwen3_5_moe_text")))
    return Arch::kQwen3_5Moe;
  return std::nullopt;
}

bool is_hybrid_arch(Arch arch) {
  return arch == Arch::kQwen3Next || arch == Arch::kQwen3_5 || arch == Arch::kQwen3_5Moe;
}

void lift_multimodal_fields(const json& outer, json& inner) {
  if (!outer.contains("architectures") || !outer["architectures"].is_array() || outer["architectures"].empty() ||
      !outer["architectures"][0].is_string())
    return;
  const std::string a = outer["architectures"][0];
  if (!hybrid_arch(a, "")) return;
  inner["architectures"] = outer["architectures"];
  // The wrapper's own value is what its model ties by; a text_config may still carry its class default.
  if (outer.contains("tie_word_embeddings")) inner["tie_word_embeddings"] = outer["tie_word_embeddings"];
}

Status hybrid_layer_pattern(const json& j, const std::string& where, ModelConfig* c) {
  int interval = 4;
  KEEL_RETURN_IF_ERROR(get_positive(j, where, "full_attention_interval", 4, &interval));
  for (int i = 0; i < c->num_layers; i++) c->layers[i].linear = (i + 1) % interval != 0;
  return Status();
}

Status parse_hybrid_fields(const json& j, const std::string& where, ModelConfig* c) {
  LinearAttnConfig& l = c->linear;
  KEEL_RETURN_IF_ERROR(get_positive(j, where, "linear_num_key_heads", 16, &l.num_k_heads));
  KEEL_RETURN_IF_ERROR(get_positive(j, where, "linear_num_value_heads", 32, &l.num_v_heads));
  KEEL_RETURN_IF_ERROR(get_positive(j, where, "linear_key_head_dim", 128, &l.k_head_dim));
  KEEL_RETURN_IF_ERROR(get_positive(j, where, "linear_value_head_dim", 128, &l.v_head_dim));
  KEEL_RETURN_IF_ERROR(get_positive(j, where, "linear_conv_kernel_dim", 4, &l.conv_kernel));
  if (l.num_v_heads % l.num_k_heads != 0)
    return invalid_argument("{}: linear_num_key_heads={} does not divide linear_num_value_heads={}", where,
                            l.num_k_heads, l.num_v_heads);
  if (int64_t{l.num_v_heads} * l.v_head_dim + 2 * int64_t{l.num_k_heads} * l.k_head_dim > (1 << 24))
    return invalid_argument("{}: the linear-attention projections ({} key heads x {}, {} value heads x {}) are too "
                            "wide", where, l.num_k_heads, l.k_head_dim, l.num_v_heads, l.v_head_dim);
  l.fused_qkvz = c->arch == Arch::kQwen3Next;
  c->attn_output_gate = true;
  if (c->arch != Arch::kQwen3_5)
    KEEL_RETURN_IF_ERROR(get_positive(j, where, "shared_expert_intermediate_size", 0,
                                      &c->shared_expert_intermediate_size));
  if (c->arch == Arch::kQwen3_5Moe && c->shared_expert_intermediate_size == 0)
    return invalid_argument("{}: shared_expert_intermediate_size is missing", where);
  // A multimodal checkpoint (vision tower beside the language model) keeps the text weights one level down.
  if (ends_with(c->architecture, "ForConditionalGeneration")) c->weight_prefix = "model.language_model.";
  if (c->sliding_window > 0)
    return unsupported("{}: sliding-window layers in a hybrid model are not supported", where);
  return Status();
}

}  // namespace keel::model
