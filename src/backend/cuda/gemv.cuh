// Skinny GEMM for decode: x[M,K] · w[N,K]ᵀ with bf16 x and w, M ≤ 8 rows, F32 accumulation.
//
// At decode batch sizes the product is a read of the weight matrix, nothing more: the roofline is bytes of w ÷
// HBM bandwidth. cuBLAS picks tile shapes made for large M and reaches 1.9-2.5 TB/s on these shapes (ncu,
// H100); this kernel streams each weight row once with 16-byte non-caching loads, four in flight per lane and
// row, and keeps the few activation rows in L1. One warp owns one job (an output column n for all M input
// rows): lanes split K, a warp shuffle sums the partial dots; a block holds 8 jobs and the grid all of them.
//
// Launched with PDL (launch.cuh), the kernel's blocks become resident while the kernel before it still runs:
// each warp loads its first weight words before pdl_wait, since weights depend on no kernel, so the weight
// stream starts while the previous kernel (a norm, attention, the previous GEMV's tail) drains.
//
// Epilogues: GemvOut writes each column to one of up to three F32 targets (a plain projection; q, k and v of a
// fused one), adding a bias; GemvGlu reads a gate row and an up row per job ([gate; up] adjacent) and writes
// act(gate)·up in bf16, so gate+up and the GLU are one kernel.
//
// dev/kernels/gemv_v2.cu tried a persistent grid with 8 words in flight and an L2 prefetch before the wait: on an
// H100 it read at 0.72-0.92 of the streaming bandwidth where this layout reads at 0.79-0.97, and the prefetch cost
// 3% of batch-1 decode (gemv_v3.cu, dev/kernels/decode_pdl.md).
#pragma once

#include <cuda_bf16.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "backend/cuda/device_math.cuh"
#include "backend/cuda/launch.cuh"

namespace keel::backend::cuda {

constexpr int kGemvMaxRows = 8;
constexpr int kGemvWarps = 8;  // warps (jobs) per block
// 16-byte weight words in flight per lane and weight row between two uses: 2 KB a row per warp.
constexpr int kGemvWordsInFlight = 4;

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

// An activation word: a plain (coherent) load, never ld.global.nc (x is not __restrict__, and the stores through
// Out may alias it as far as the compiler knows). Under PDL the kernel that wrote x ran while this one was
// resident, and the non-coherent path may serve bytes cached before those writes.
__device__ __forceinline__ uint4 load_activation(const uint4* p) { return *p; }

// Column n of a projection's output goes to the target it falls in: [0, cols0) to out0, the next cols1 to out1,
// the rest to out2 (a plain projection has one target), each [M, cols] row-major, plus the target's bias.
struct GemvOut {
  static constexpr int kRows = 1;  // weight rows per job
  float* out0;
  float* out1;
  float* out2;
  const __nv_bfloat16* bias0;  // each may be null
  const __nv_bfloat16* bias1;
  const __nv_bfloat16* bias2;
  int cols0, cols1, cols2;

  __device__ __forceinline__ void store(int n, int m, const float (&s)[1]) const {
    float* o = out0;
    const __nv_bfloat16* b = bias0;
    int cols = cols0, col = n;
    if (col >= cols0) {
      col -= cols0;
      o = out1, b = bias1, cols = cols1;
      if (col >= cols1) {
        col -= cols1;
        o = out2, b = bias2, cols = cols2;
      }
    }
    o[static_cast<int64_t>(m) * cols + col] = b != nullptr ? s[0] + __bfloat162float(b[col]) : s[0];
  }
};

// Job j reads weight rows j (gate) and inter + j (up); out [M, inter] bf16 = act(gate) * up (glu_fused_kernel's
// arithmetic on the same F32 sums).
struct GemvGlu {
  static constexpr int kRows = 2;
  __nv_bfloat16* out;
  int inter;
  bool gelu;

  __device__ __forceinline__ void store(int j, int m, const float (&s)[2]) const {
    out[static_cast<int64_t>(m) * inter + j] = __float2bfloat16(glu_activation(s[0], gelu) * s[1]);
  }
};

// jobs: output columns; k: the reduction length (a multiple of 8); row_stride: rows between a job's weight rows.
template <int M, typename Out>
__global__ void __launch_bounds__(kGemvWarps * 32)
    gemv_kernel(const __nv_bfloat16* x, const __nv_bfloat16* w, int jobs, int k, int64_t row_stride, Out out) {
  constexpr int R = Out::kRows;
  constexpr int U = kGemvWordsInFlight;
  pdl_launch_dependents();
  const int lane = threadIdx.x % 32;
  const int job = blockIdx.x * kGemvWarps + threadIdx.x / 32;
  const bool active = job < jobs;
  const int words = k / 8;  // 16-byte words per row
  const uint4* xv = reinterpret_cast<const uint4*>(x);
  const uint4* rows[R];
#pragma unroll
  for (int r = 0; r < R; r++)
    rows[r] = reinterpret_cast<const uint4*>(w) + (static_cast<int64_t>(job) + r * row_stride) * words;

  uint4 v[R][U];
  // Words base, base + 32, ... of the job's rows (zeros past the row's end).
  auto load = [&](int base) {
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
      for (int u = 0; u < U; u++) {
        const int i = base + 32 * u;
        v[r][u] = i < words ? load_streaming(rows[r] + i) : make_uint4(0, 0, 0, 0);
      }
  };
  if (active) load(lane);  // weights only: before the wait
  pdl_wait();
  if (!active) return;

  float acc[R][M];
#pragma unroll
  for (int r = 0; r < R; r++)
#pragma unroll
    for (int m = 0; m < M; m++) acc[r][m] = 0.0f;
  for (int base = lane;;) {
#pragma unroll
    for (int u = 0; u < U; u++) {
      const int i = base + 32 * u;
      if (i < words) {
        float wf[R][8];
#pragma unroll
        for (int r = 0; r < R; r++) bf16x8_to_float(v[r][u], wf[r]);
#pragma unroll
        for (int m = 0; m < M; m++) {
          float xf[8];
          bf16x8_to_float(load_activation(xv + static_cast<int64_t>(m) * words + i), xf);
#pragma unroll
          for (int r = 0; r < R; r++)
#pragma unroll
            for (int e = 0; e < 8; e++) acc[r][m] = fmaf(wf[r][e], xf[e], acc[r][m]);
        }
      }
    }
    base += 32 * U;
    if (base >= words) break;
    load(base);
  }
#pragma unroll
  for (int m = 0; m < M; m++) {
    float s[R];
#pragma unroll
    for (int r = 0; r < R; r++) s[r] = warp_sum(acc[r][m]);
    if (lane == 0) out.store(job, m, s);
  }
}

// Rows up to which the backend prefers this kernel to cuBLAS. On an H100 (dev/kernels/gemv_v1.cu, 8B shapes) the
// first version read the weights at 0.79-1.00 of the streaming-read bandwidth with one row (cuBLAS 0.65-0.91)
// and still at 0.73-0.99 with two (cuBLAS 0.66-0.91); from four rows on, the activations' L1 traffic made it
// slower than cuBLAS (0.45-0.63 at eight rows against 0.66-0.90).
constexpr int kGemvPreferredRows = 2;

// True when the kernel applies: bf16 operands, 1..8 rows, K a multiple of 8 and 16-byte aligned rows.
inline bool gemv_applies(int m, int k, const void* x, const void* w) {
  return m >= 1 && m <= kGemvMaxRows && k % 8 == 0 &&
         ((reinterpret_cast<uintptr_t>(x) | reinterpret_cast<uintptr_t>(w)) % 16) == 0;
}

struct GemvLaunch {
  cudaStream_t stream = nullptr;
  bool pdl = false;
};

template <int M, typename Out>
cudaError_t launch_gemv_rows(const __nv_bfloat16* x, const __nv_bfloat16* w, int jobs, int k, int64_t row_stride,
                             const Out& out, const GemvLaunch& l) {
  return launch_kernel(l.pdl, gemv_kernel<M, Out>, dim3((jobs + kGemvWarps - 1) / kGemvWarps),
                       dim3(kGemvWarps * 32), 0, l.stream, x, w, jobs, k, row_stride, out);
}

// Calls f(std::integral_constant<int, m>) for m in 1..kGemvMaxRows; false for any other m.
template <typename F>
bool with_gemv_rows(int m, F&& f) {
  switch (m) {
#define KEEL_GEMV_ROWS(M)                   \
  case M:                                   \
    f(std::integral_constant<int, M>());    \
    return true;
    KEEL_GEMV_ROWS(1)
    KEEL_GEMV_ROWS(2)
    KEEL_GEMV_ROWS(3)
    KEEL_GEMV_ROWS(4)
    KEEL_GEMV_ROWS(5)
    KEEL_GEMV_ROWS(6)
    KEEL_GEMV_ROWS(7)
    KEEL_GEMV_ROWS(8)
#undef KEEL_GEMV_ROWS
  }
  return false;
}

// x [m, k] · w[jobs * Out::kRows, k]ᵀ into `out`; m in 1..kGemvMaxRows.
template <typename Out>
cudaError_t launch_gemv(const __nv_bfloat16* x, const __nv_bfloat16* w, int m, int jobs, int k, int64_t row_stride,
                        const Out& out, const GemvLaunch& l) {
  cudaError_t err = cudaErrorInvalidValue;
  with_gemv_rows(m, [&](auto rows) {
    err = launch_gemv_rows<decltype(rows)::value>(x, w, jobs, k, row_stride, out, l);
  });
  return err;
}

// out[m, n] (float) = x[m, k] · w[n, k]ᵀ, without PDL (dev/kernels' benchmarks).
inline void launch_gemv_bf16(const __nv_bfloat16* x, const __nv_bfloat16* w, float* out, int m, int n, int k,
                             cudaStream_t stream) {
  const GemvOut o{out, nullptr, nullptr, nullptr, nullptr, nullptr, n, 0, 0};
  launch_gemv(x, w, m, n, k, 0, o, GemvLaunch{stream, false});
}

}  // namespace keel::backend::cuda
