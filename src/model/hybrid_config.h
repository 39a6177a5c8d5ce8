// config.json of the hybrid families: Qwen3-Next (Qwen3NextForCausalLM) and Qwen3.5 dense and MoE
// (Qwen3_5ForConditionalGeneration / Qwen3_5MoeForConditionalGeneration, whose language model sits under
// text_config and whose tensors under model.language_model.*; their *ForCausalLM text-only forms too). Three of
// every four layers are Gated DeltaNet linear attention (layer_types "linear_attention", or
// full_attention_interval), the fourth gated full attention. parse_config calls these for the family's fields.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "base/status.h"
#include "model/config.h"

namespace keel::model {

std::optional<Arch> hybrid_arch(const std::string& architecture, const std::string& model_type);
bool is_hybrid_arch(Arch arch);

// A multimodal wrapper keeps architectures and tie_word_embeddings beside text_config: copied into it (the
// wrapper's tie_word_embeddings wins over text_config's).
void lift_multimodal_fields(const nlohmann::json& outer, nlohmann::json& inner);

// Without layer_types: every full_attention_interval-th layer (default 4) is full attention, the rest linear.
Status hybrid_layer_pattern(const nlohmann::json& j, const std::string& where, ModelConfig* c);

// The linear-attention shape, the shared expert, the output gate and where the tensors are.
Status parse_hybrid_fields(const nlohmann::json& j, const std::string& where, ModelConfig* c);

}  // namespace keel::model
