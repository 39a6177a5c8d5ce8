// Token choice on the device (backend/sampling.h's contract): greedy (argmax.cuh) or sampled (sampling.cuh) per
// row of logits, so a step copies one id per sequence off the GPU instead of [rows, vocab] floats.
#pragma once

#include <cstdint>

#include "backend/cuda/device_arena.h"
#include "backend/cuda/device_context.h"
#include "backend/ops.h"
#include "backend/sampling.h"

namespace keel::backend::cuda {

class DeviceSampler {
 public:
  DeviceSampler(const DeviceContext& ctx, DeviceArena& memory) : ctx_(ctx), memory_(memory) {}

  void reserve(const ForwardLimits& limits);
  // Backend::argmax_rows and Backend::sample_rows: the ids (and values) are on the host when these return.
  void argmax_rows(const Tensor& logits, int32_t* out, float* value);
  void sample_rows(const Tensor& logits, const SampleParams* params, int rows, int32_t* out);

 private:
  const DeviceContext& ctx_;
  DeviceArena& memory_;
  DeviceArray<int32_t> ids_;
  DeviceArray<float> values_;
  DeviceArray<SampleParams> params_;
};

}  // namespace keel::backend::cuda
