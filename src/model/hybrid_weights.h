// Binding a hybrid model's layers (Qwen3-Next, Qwen3.5): Gated DeltaNet layers, gated full attention whose q_proj
// holds each head's query then its output gate, and MLPs (dense, or MoE with a sigmoid-gated shared expert).
// weights.cpp's binder does the file work behind TensorBinder; this file knows the names and layouts.
#pragma once

#include <string>
#include <vector>

#include "backend/ops.h"
#include "model/config.h"
#include "model/weights.h"

namespace keel::model {

class TensorBinder {
 public:
  virtual ~TensorBinder() = default;
  // A [rows, cols] tensor ([rows] when cols == 0), checked against the checkpoint's shape.
  virtual Status bind(const std::string& name, int64_t rows, int64_t cols, const char* meaning,
                      backend::Tensor* out) = 0;
  // A tensor stored as `shape` (conv1d's [channels, 1, kernel]) viewed as [rows, cols].
  virtual Status bind_viewed(const std::string& name, const std::vector<int64_t>& shape, int64_t rows, int64_t cols,
                             const char* meaning, backend::Tensor* out) = 0;
  // [rows, cols] whose row i is the checkpoint's row perm[i] (a copy): layouts interleaved per head, made
  // contiguous so that each part is a row range.
  virtual Status bind_permuted(const std::string& name, int64_t rows, int64_t cols, const std::vector<int64_t>& perm,
                               const char* meaning, backend::Tensor* out) = 0;
  // Rows [row0, row0 + rows) of expert e of a stacked [experts, full_rows, cols] tensor.
  virtual Status bind_expert_slice(const std::string& name, int experts, int64_t full_rows, int64_t cols, int e,
                                   int64_t row0, int64_t rows, const char* meaning, backend::Tensor* out) = 0;
  virtual bool has(const std::string& name) const = 0;
};

// Layer `i`'s tensors, under `prefix` ("model.layers.3."). Unsharded only.
Status bind_hybrid_layer(const ModelConfig& c, int i, const std::string& prefix, TensorBinder& b, LayerWeights& L);

}  // namespace keel::model
