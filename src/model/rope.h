// RoPE inverse frequencies for every scaling type, computed on the host the way transformers computes them
// (float32 tensors, double scalars), so the CPU oracle matches to rounding.
#pragma once

#include "backend/ops.h"
#include "model/config.h"

namespace keel::model {

// `seq_len` matters only for dynamic NTK scaling: the longest sequence (max position + 1) in this forward.
backend::RopeTable make_rope_table(const RopeConfig& rope, int head_dim, int max_position_embeddings, int seq_len);

}  // namespace keel::model
