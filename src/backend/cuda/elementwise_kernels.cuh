// Element-wise kernels: residual add, GLU of separate gate and up, soft-cap. Each starts with
// pdl_launch_dependents and pdl_wait (launch.cuh): the backend may launch it with PDL. add_kernel and
// softcap_kernel are not templates: include this header in one .cu file only.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda/device_math.cuh"
#include "backend/cuda/launch.cuh"

namespace keel::backend::cuda {

__global__ void add_kernel(const float* a, const float* b, float* out, int64_t n) {
  pdl_launch_dependents();
  pdl_wait();
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) out[i] = a[i] + b[i];
}

template <typename T>
__global__ void glu_kernel(const float* gate, const float* up, int64_t n, bool gelu, T* out) {
  pdl_launch_dependents();
  pdl_wait();
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const float g = gate[i];
  const float a = glu_activation(g, gelu);
  out[i] = from_f<T>(a * up[i]);
}

__global__ void softcap_kernel(float* x, int64_t n, float cap) {
  pdl_launch_dependents();
  pdl_wait();
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) x[i] = cap * tanhf(x[i] / cap);
}

}  // namespace keel::backend::cuda
