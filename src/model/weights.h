// Binds a checkpoint's tensors to the model's layer structure, checking every name, shape and dtype against
// the config before anything runs, and hands them to the backend (a view on CPU, an upload on a GPU).
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backend/ops.h"
#include "format/safetensors.h"
#include "model/config.h"
#include "model/shard.h"

namespace keel::model {

struct LayerWeights {
  backend::Tensor input_norm, post_attn_norm;
  backend::Tensor pre_ffn_norm, post_ffn_norm;  // gemma3 sandwich norms
  backend::Tensor q, k, v, o;
  backend::Tensor q_bias, k_bias, v_bias, o_bias;
  backend::Tensor q_norm, k_norm;
  backend::Tensor gate, up, down;  // dense MLP
  backend::Tensor gate_bias, up_bias, down_bias;
  backend::MoeWeights moe;  // sparse MLP (layer spec moe)
  // Hybrid models (model/hybrid_weights.h).
  backend::Tensor attn_gate;  // gated full attention: q_proj's gate rows [num_heads*head_dim, hidden]
  backend::Tensor lin_qkv, lin_z, lin_b, lin_a, lin_out;  // Gated DeltaNet projections (layer spec linear)
  backend::GatedDeltaNetWeights lin;
  backend::Tensor shared_gate, shared_up, shared_down, shared_expert_gate;  // the MoE's shared expert
};

struct ModelWeights {
  // Storage of synthetic weights (the checkpoint's mapping holds real ones).
  std::vector<std::unique_ptr<uint16_t[]>> owned;
  // Packed weights a backend reads in place (Backend::keeps_quantized): their tensors point here, so the
  // container never moves an element.
  std::deque<format::QuantMatrix> quant;
  // "mlx-affine 4-bit g64" / "Q4_K" -> {tensors, bytes}: what keel info reports.
  struct QuantUse {
    uint64_t tensors = 0;
    uint64_t bytes = 0;
  };
  std::map<std::string, QuantUse> quant_use;
  // A pipeline stage holds only its part (shard.h): the embedding on the first stage (and the last when tied),
  // final_norm and lm_head on the last; the others are empty tensors.
  backend::Tensor embed;    // [vocab, hidden]
  backend::Tensor lm_head;  // [vocab, hidden]; the embedding when tied
  backend::Tensor final_norm;
  std::vector<LayerWeights> layers;  // the stage's layers, from its first (ShardLayout::layer0)
  uint64_t parameter_count = 0;
  uint64_t bytes = 0;          // as stored: packed quantized weights count their packed bytes and scales
  DType dtype = DType::kF32;  // of the largest share of bytes (quantized weights: the dtype they dequantize to)
};

// `shard`: bind only this pipeline stage's tensors and this tensor-parallel rank's slice of each (shard.h); the
// default binds all.
Result<ModelWeights> bind_weights(const ModelConfig& config, const format::WeightFiles& files,
                                  backend::Backend* backend, ShardSpec shard = {});

// How many parameters and tensors `config` implies (tied embeddings counted once), without binding any.
struct WeightCount {
  uint64_t parameters = 0;
  uint64_t tensors = 0;
};
WeightCount count_weights(const ModelConfig& config, ShardSpec shard = {});

// Random bf16 weights of the exact shapes `config` implies (no checkpoint), for benchmarks.
Result<ModelWeights> synthetic_weights(const ModelConfig& config, backend::Backend* backend, uint64_t seed,
                                       ShardSpec shard = {});

}  // namespace keel::model
