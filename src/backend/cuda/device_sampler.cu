#include "backend/cuda/device_sampler.h"

#include "backend/cuda/argmax.cuh"
#include "backend/cuda/sampling.cuh"

namespace keel::backend::cuda {

void DeviceSampler::reserve(const ForwardLimits& limits) {
  memory_.reserve(ids_, limits.max_tokens, true);
  memory_.reserve(values_, limits.max_tokens, true);
  memory_.reserve(params_, limits.max_tokens, true);
}

void DeviceSampler::argmax_rows(const Tensor& logits, int32_t* out, float* value) {
  const int rows = static_cast<int>(logits.rows);
  if (rows == 0) return;
  memory_.reserve(ids_, rows);
  if (value != nullptr) memory_.reserve(values_, rows);
  argmax_rows_kernel<<<rows, kArgmaxThreads, 0, ctx_.stream>>>(static_cast<const float*>(logits.data),
                                                               static_cast<int>(logits.cols), ids_.ptr,
                                                               value != nullptr ? values_.ptr : nullptr);
  ctx_.check_launch();
  KEEL_CUDA_CHECK(cudaMemcpyAsync(out, ids_.ptr, rows * sizeof(int32_t), cudaMemcpyDeviceToHost, ctx_.stream));
  if (value != nullptr)
    KEEL_CUDA_CHECK(cudaMemcpyAsync(value, values_.ptr, rows * sizeof(float), cudaMemcpyDeviceToHost, ctx_.stream));
  KEEL_CUDA_CHECK(cudaStreamSynchronize(ctx_.stream));
}

// The rows' parameters go up, one id per row comes back.
void DeviceSampler::sample_rows(const Tensor& logits, const SampleParams* params, int rows, int32_t* out) {
  if (rows == 0) return;
  memory_.reserve(ids_, rows);
  memory_.reserve(params_, rows);
  KEEL_CUDA_CHECK(cudaMemcpyAsync(params_.ptr, params, rows * sizeof(SampleParams), cudaMemcpyHostToDevice,
                                  ctx_.stream));
  sample_rows_kernel<<<rows, kSampleThreads, 0, ctx_.stream>>>(static_cast<const float*>(logits.data),
                                                               static_cast<int>(logits.cols), params_.ptr, ids_.ptr);
  ctx_.check_launch();
  KEEL_CUDA_CHECK(cudaMemcpyAsync(out, ids_.ptr, rows * sizeof(int32_t), cudaMemcpyDeviceToHost, ctx_.stream));
  KEEL_CUDA_CHECK(cudaStreamSynchronize(ctx_.stream));
}

}  // namespace keel::backend::cuda
