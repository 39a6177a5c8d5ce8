// Greedy sampling on the device: each row's largest logit, the lowest index on ties (the CPU sampler's rule),
// so a decode step copies one int32 per sequence off the GPU instead of [rows, vocab] floats.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace keel::backend::cuda {

constexpr int kArgmaxThreads = 1024;

// (value, index) ordered by value, then by the lower index.
__device__ __forceinline__ bool argmax_better(float v, int i, float best_v, int best_i) {
  return v > best_v || (v == best_v && i < best_i);
}

// One block per row. out_value (nullable): the row's largest value, for vocab-parallel greedy.
__global__ void __launch_bounds__(kArgmaxThreads) argmax_rows_kernel(const float* __restrict__ logits, int vocab,
                                                                      int32_t* __restrict__ out,
                                                                      float* __restrict__ out_value) {
  const float* row = logits + static_cast<int64_t>(blockIdx.x) * vocab;
  float best_v = -INFINITY;
  int best_i = vocab;  // beyond every real index: any value wins over it, even -inf
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    const float v = row[i];
    if (argmax_better(v, i, best_v, best_i) || best_i == vocab) best_v = v, best_i = i;
  }
  for (int o = 16; o > 0; o >>= 1) {
    const float v = __shfl_xor_sync(0xffffffffu, best_v, o);
    const int i = __shfl_xor_sync(0xffffffffu, best_i, o);
    if (argmax_better(v, i, best_v, best_i)) best_v = v, best_i = i;
  }
  __shared__ float warp_v[kArgmaxThreads / 32];
  __shared__ int warp_i[kArgmaxThreads / 32];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) warp_v[warp] = best_v, warp_i[warp] = best_i;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < static_cast<int>(blockDim.x / 32); w++)
      if (argmax_better(warp_v[w], warp_i[w], best_v, best_i)) best_v = warp_v[w], best_i = warp_i[w];
    out[blockIdx.x] = best_i;
    if (out_value != nullptr) out_value[blockIdx.x] = best_v;
  }
}

}  // namespace keel::backend::cuda
