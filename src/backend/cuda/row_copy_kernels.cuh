// Row copies: the embedding lookup and the gather of kept rows, one block per row. Each starts with
// pdl_launch_dependents and pdl_wait (launch.cuh): the backend may launch it with PDL.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda/device_math.cuh"
#include "backend/cuda/launch.cuh"

namespace keel::backend::cuda {

// out[row] = table[tokens[row]] * scale, one block per row.
template <typename T>
__global__ void embed_kernel(const T* table, const int32_t* tokens, int64_t dim, float scale, float* out) {
  pdl_launch_dependents();
  pdl_wait();
  const int64_t row = blockIdx.x;
  const T* src = table + static_cast<int64_t>(tokens[row]) * dim;
  for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) out[row * dim + d] = to_f(src[d]) * scale;
}

// out[i] = x[rows[i]] (any element type, same for both).
template <typename T>
__global__ void gather_rows_kernel(const T* x, const int32_t* rows, int64_t cols, T* out) {
  pdl_launch_dependents();
  pdl_wait();
  const int64_t r = blockIdx.x;
  const T* src = x + static_cast<int64_t>(rows[r]) * cols;
  for (int64_t d = threadIdx.x; d < cols; d += blockDim.x) out[r * cols + d] = src[d];
}

}  // namespace keel::backend::cuda
