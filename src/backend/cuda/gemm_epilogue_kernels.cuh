// What follows a cuBLAS GEMM of fused weights: the split of [q|k|v] into its tensors with their biases, the GLU
// of [gate|up], a bias add. Each kernel starts with pdl_launch_dependents and pdl_wait (launch.cuh).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda/device_math.cuh"
#include "backend/cuda/launch.cuh"

namespace keel::backend::cuda {

// Splits a fused projection output [rows, total] into column ranges of separate tensors, adding biases.
struct SplitTarget {
  float* out;
  const void* bias;  // element type TB, or null
  int64_t cols;
};
template <typename TB>
__global__ void split_columns_kernel(const float* in, int64_t rows, int64_t total, SplitTarget a, SplitTarget b,
                                     SplitTarget c) {
  pdl_launch_dependents();
  pdl_wait();
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= rows * total) return;
  const int64_t r = i / total;
  int64_t col = i % total;
  const SplitTarget* t = &a;
  if (col >= a.cols) {
    col -= a.cols;
    t = &b;
    if (col >= b.cols) {
      col -= b.cols;
      t = &c;
    }
  }
  float v = in[i];
  if (t->bias != nullptr) v += to_f(static_cast<const TB*>(t->bias)[col]);
  t->out[r * t->cols + col] = v;
}

// out = act(gate) * up from a fused [rows, 2 * inter] GEMM output (gate columns first).
template <typename T>
__global__ void glu_fused_kernel(const float* gate_up, int64_t rows, int64_t inter, bool gelu, T* out) {
  pdl_launch_dependents();
  pdl_wait();
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= rows * inter) return;
  const int64_t r = i / inter, c = i % inter;
  const float g = gate_up[r * 2 * inter + c];
  const float u = gate_up[r * 2 * inter + inter + c];
  const float a = glu_activation(g, gelu);
  out[i] = from_f<T>(a * u);
}

template <typename T>
__global__ void add_bias_kernel(float* out, const T* bias, int64_t rows, int64_t cols) {
  pdl_launch_dependents();
  pdl_wait();
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < rows * cols) out[i] += to_f(bias[i % cols]);
}

}  // namespace keel::backend::cuda
