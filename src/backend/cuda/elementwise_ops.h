// The CUDA backend's row-wise and element-wise ops: embedding lookup, RMS norms (with the residual add fused),
// residual add, GLU, soft-cap and the gather of the rows whose logits are kept.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/cuda/device_batch.h"
#include "backend/cuda/device_context.h"
#include "backend/ops.h"

namespace keel::backend::cuda {

class ElementwiseOps {
 public:
  ElementwiseOps(const DeviceContext& ctx, const DeviceBatch& batch) : ctx_(ctx), batch_(batch) {}

  // The token ids and the kept rows are the batch's, uploaded by begin_forward.
  void embed(const Tensor& table, int n, float scale, Tensor& out);
  void rms_norm(const Tensor& x, const Tensor& w, float eps, bool add_one, Tensor& out);
  void add_rms_norm(Tensor& x, const Tensor& delta, const Tensor& w, float eps, bool add_one, Tensor& out);
  void add(const Tensor& a, const Tensor& b, Tensor& out);
  void glu(const Tensor& gate, const Tensor& up, GluActivation act, Tensor& out);
  void softcap(Tensor& x, float cap);
  void gather_rows(const Tensor& x, int rows, Tensor& out);

 private:
  const DeviceContext& ctx_;
  const DeviceBatch& batch_;
};

}  // namespace keel::backend::cuda
