// RMS norms (and the residual add fused into one), a block per row. Each kernel starts with
// pdl_launch_dependents and pdl_wait (launch.cuh): the backend may launch it with PDL.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda/device_math.cuh"
#include "backend/cuda/launch.cuh"

namespace keel::backend::cuda {

// One block per row: out = x / rms(x) * (w or 1 + w).
template <typename TOut, typename TW>
__global__ void rms_norm_kernel(const float* x, const TW* w, float eps, bool add_one, int64_t cols, TOut* out) {
  pdl_launch_dependents();
  pdl_wait();
  const int64_t row = blockIdx.x;
  const float* xr = x + row * cols;
  float ss = 0.0f;
  for (int64_t d = threadIdx.x; d < cols; d += blockDim.x) ss += xr[d] * xr[d];
  const float inv = rsqrtf(block_sum(ss) / static_cast<float>(cols) + eps);
  for (int64_t d = threadIdx.x; d < cols; d += blockDim.x) {
    const float wv = to_f(w[d]) + (add_one ? 1.0f : 0.0f);
    out[row * cols + d] = from_f<TOut>((xr[d] * inv) * wv);
  }
}

// x += delta, then out = x / rms(x) * (w or 1 + w): one block per row.
template <typename TOut, typename TW>
__global__ void add_rms_norm_kernel(float* x, const float* delta, const TW* w, float eps, bool add_one, int64_t cols,
                                    TOut* out) {
  pdl_launch_dependents();
  pdl_wait();
  const int64_t row = blockIdx.x;
  float* xr = x + row * cols;
  const float* dr = delta + row * cols;
  float ss = 0.0f;
  for (int64_t d = threadIdx.x; d < cols; d += blockDim.x) {
    const float v = xr[d] + dr[d];
    xr[d] = v;
    ss += v * v;
  }
  const float inv = rsqrtf(block_sum(ss) / static_cast<float>(cols) + eps);
  for (int64_t d = threadIdx.x; d < cols; d += blockDim.x) {
    const float wv = to_f(w[d]) + (add_one ? 1.0f : 0.0f);
    out[row * cols + d] = from_f<TOut>((xr[d] * inv) * wv);
  }
}

// The two kernels above for decode-sized rows: one block of kNormThreads per row, each thread holding up to
// kNormVecs groups of 4 consecutive columns in registers, every load of the row issued before the first use and
// the weights before the PDL wait. In the loops above a store may alias the next iteration's loads, so each
// iteration waits for its own (8 round trips to L2 for a 4096-wide row on 1024 threads, against 1 here).
// delta null: out = rms_norm(x); else x += delta first. Needs cols % 4 == 0, cols <= 4 * kNormVecs * kNormThreads
// and 16-byte aligned x and delta. out may alias x.
constexpr int kNormThreads = 1024;
constexpr int kNormVecs = 2;

template <typename TOut, typename TW>
__global__ void __launch_bounds__(kNormThreads)
    rms_norm_row_kernel(float* x, const float* delta, const TW* w, float eps, bool add_one, int cols, TOut* out) {
  pdl_launch_dependents();
  float wv[kNormVecs][4];
#pragma unroll
  for (int v = 0; v < kNormVecs; v++) {
    const int c = (threadIdx.x + v * kNormThreads) * 4;
#pragma unroll
    for (int e = 0; e < 4; e++) wv[v][e] = c < cols ? to_f(w[c + e]) + (add_one ? 1.0f : 0.0f) : 0.0f;
  }
  pdl_wait();
  const int64_t row = blockIdx.x;
  float* xr = x + row * cols;
  float4 xv[kNormVecs];
#pragma unroll
  for (int v = 0; v < kNormVecs; v++) {
    const int c = (threadIdx.x + v * kNormThreads) * 4;
    xv[v] = c < cols ? *reinterpret_cast<const float4*>(xr + c) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (delta != nullptr && c < cols) {
      const float4 d = *reinterpret_cast<const float4*>(delta + row * cols + c);
      xv[v].x += d.x, xv[v].y += d.y, xv[v].z += d.z, xv[v].w += d.w;
    }
  }
  float ss = 0.0f;
#pragma unroll
  for (int v = 0; v < kNormVecs; v++) {
    const int c = (threadIdx.x + v * kNormThreads) * 4;
    if (delta != nullptr && c < cols) *reinterpret_cast<float4*>(xr + c) = xv[v];
    ss += xv[v].x * xv[v].x + xv[v].y * xv[v].y + xv[v].z * xv[v].z + xv[v].w * xv[v].w;
  }
  const float inv = rsqrtf(block_sum(ss) / static_cast<float>(cols) + eps);
#pragma unroll
  for (int v = 0; v < kNormVecs; v++) {
    const int c = (threadIdx.x + v * kNormThreads) * 4;
    if (c >= cols) continue;
    TOut* o = out + row * cols + c;
    o[0] = from_f<TOut>((xv[v].x * inv) * wv[v][0]);
    o[1] = from_f<TOut>((xv[v].y * inv) * wv[v][1]);
    o[2] = from_f<TOut>((xv[v].z * inv) * wv[v][2]);
    o[3] = from_f<TOut>((xv[v].w * inv) * wv[v][3]);
  }
}

}  // namespace keel::backend::cuda
