// The parts of the forward pass only hybrid models have (Qwen3-Next, Qwen3.5): the Gated DeltaNet token mixer,
// the sigmoid output gate of their full attention, and the MoE's sigmoid-gated shared expert. Model::run_layers
// calls these; the recurrent state they read and write lives in the backend's pool, one slot per sequence
// (backend::SeqSlice::state_slot), reserved at load like the KV pool.
#pragma once

#include "backend/ops.h"
#include "model/config.h"
#include "model/weights.h"

namespace keel::model {

struct HybridWorkspace {
  backend::Tensor qkv, z, b, a;  // Gated DeltaNet projections: [T, conv_dim], [T, value_dim], [T, num_v_heads] x 2
  backend::Tensor core;          // its output before out_proj [T, value_dim] (act dtype)
  backend::Tensor gate;          // gated attention's output gate [T, q_size]
  backend::Tensor shared, shared_logit;  // shared expert's output [T, hidden] and gate logit [T, 1]
};

// Scratch for `tokens` rows, allocated once at load.
Status alloc_hybrid_workspace(const ModelConfig& c, backend::Backend& backend, int64_t tokens, HybridWorkspace* ws);

// `slots` sequences' state for every linear-attention layer of `c`.
backend::RecurrentStateLayout recurrent_state_layout(const ModelConfig& c, int slots);

// The token mixer of a linear-attention layer: h (the normed input) -> out [T, hidden]. `state_layer` indexes the
// model's linear-attention layers.
Status gated_deltanet_block(backend::Backend& B, const ModelConfig& c, const LayerWeights& L, int state_layer,
                            const backend::Tensor& h, const backend::BatchMeta& meta, HybridWorkspace& ws,
                            backend::Tensor& out);

// mlp += sigmoid(h . shared_expert_gate) * shared_expert(h), with gate/up (F32) and act (act dtype) scratch of at
// least shared_expert_intermediate_size columns per row.
Status add_shared_expert(backend::Backend& B, const ModelConfig& c, const LayerWeights& L, const backend::Tensor& h,
                         void* gate_buf, void* up_buf, void* act_buf, HybridWorkspace& ws, backend::Tensor& mlp);

}  // namespace keel::model
