// Skinny GEMM for decode: out[M,N] (float) = x[M,K] · w[N,K]ᵀ with bf16 x and w, M ≤ 8 rows.
//
// At decode batch sizes the product is a read of the weight matrix, nothing more: the roofline is bytes of w ÷
// HBM bandwidth. cuBLAS picks tile shapes made for large M and reaches 1.9-2.5 TB/s on these shapes (ncu,
// H100); this kernel streams each weight row once with 16-byte non-caching loads, four in flight per lane, and
// keeps the few activation rows in L1. One warp owns one output row n for all M input rows: lanes split K, a
// warp shuffle sums the partial dots. F32 accumulation, so the result equals cuBLAS' up to summation order.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "backend/cuda/kernels.cuh"

namespace keel::backend::cuda {

constexpr int kGemvMaxRows = 8;
constexpr int kGemvWarps = 8;  // warps (output rows) per block

// 8 bf16 in a 16-byte word, widened to float.
__device__ __forceinline__ void bf16x8_to_float(const uint4& v, float (&f)[8]) {
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&v);
#pragma unroll
  for (int i = 0; i < 4; i++) {
    const float2 p = __bfloat1622float2(h[i]);
    f[2 * i] = p.x;
    f[2 * i + 1] = p.y;
  }
}

// A weight word read once: bypass L1 so the activations stay there.
__device__ __forceinline__ uint4 load_streaming(const uint4* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

template <int M>
__global__ void __launch_bounds__(kGemvWarps * 32)
    gemv_bf16_kernel(const __nv_bfloat16* __restrict__ x, const __nv_bfloat16* __restrict__ w,
                     float* __restrict__ out, int n_rows, int k) {
  const int lane = threadIdx.x % 32;
  const int n = blockIdx.x * kGemvWarps + threadIdx.x / 32;
  if (n >= n_rows) return;
  const int words = k / 8;  // 16-byte words per row
  const uint4* wr = reinterpret_cast<const uint4*>(w + static_cast<int64_t>(n) * k);
  const uint4* xr = reinterpret_cast<const uint4*>(x);
  float acc[M];
#pragma unroll
  for (int m = 0; m < M; m++) acc[m] = 0.0f;

  auto step = [&](const uint4& wv, int i) {
    float wf[8];
    bf16x8_to_float(wv, wf);
#pragma unroll
    for (int m = 0; m < M; m++) {
      float xf[8];
      bf16x8_to_float(__ldg(xr + static_cast<int64_t>(m) * words + i), xf);
#pragma unroll
      for (int j = 0; j < 8; j++) acc[m] = fmaf(wf[j], xf[j], acc[m]);
    }
  };
  // Four independent weight loads in flight per lane, then the tail.
  int i = lane;
  for (; i + 96 < words; i += 128) {
    const uint4 a = load_streaming(wr + i), b = load_streaming(wr + i + 32), c = load_streaming(wr + i + 64),
                d = load_streaming(wr + i + 96);
    step(a, i);
    step(b, i + 32);
    step(c, i + 64);
    step(d, i + 96);
  }
  for (; i < words; i += 32) step(load_streaming(wr + i), i);

#pragma unroll
  for (int m = 0; m < M; m++) {
    const float s = warp_sum(acc[m]);
    if (lane == 0) out[static_cast<int64_t>(m) * n_rows + n] = s;
  }
}

// Rows up to which the backend prefers this kernel to cuBLAS. On an H100 (dev/kernels/gemv_v1.cu, 8B shapes) it
// reads the weights at 0.79-1.00 of the streaming-read bandwidth with one row (cuBLAS 0.65-0.91) and still at
// 0.73-0.99 with two (cuBLAS 0.66-0.91); from four rows on, the activations' L1 traffic makes it slower than
// cuBLAS (0.45-0.63 at eight rows against 0.66-0.90).
constexpr int kGemvPreferredRows = 2;

// True when the kernel applies: bf16 operands, 1..8 rows, K a multiple of 8 and 16-byte aligned rows.
inline bool gemv_applies(int m, int k, const void* x, const void* w) {
  return m >= 1 && m <= kGemvMaxRows && k % 8 == 0 &&
         ((reinterpret_cast<uintptr_t>(x) | reinterpret_cast<uintptr_t>(w)) % 16) == 0;
}

inline void launch_gemv_bf16(const __nv_bfloat16* x, const __nv_bfloat16* w, float* out, int m, int n, int k,
                             cudaStream_t stream) {
  const dim3 grid((n + kGemvWarps - 1) / kGemvWarps), block(kGemvWarps * 32);
  switch (m) {
#define KEEL_GEMV_CASE(M) \
  case M:                 \
    gemv_bf16_kernel<M><<<grid, block, 0, stream>>>(x, w, out, n, k); \
    break;
    KEEL_GEMV_CASE(1)
    KEEL_GEMV_CASE(2)
    KEEL_GEMV_CASE(3)
    KEEL_GEMV_CASE(4)
    KEEL_GEMV_CASE(5)
    KEEL_GEMV_CASE(6)
    KEEL_GEMV_CASE(7)
    KEEL_GEMV_CASE(8)
#undef KEEL_GEMV_CASE
  }
}

}  // namespace keel::backend::cuda
