// Rotary embedding and the KV cache write, apart or in one kernel. Each starts with pdl_launch_dependents and
// pdl_wait (launch.cuh). rope_kernel is not a template: include this header in one .cu file only.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda/device_math.cuh"
#include "backend/cuda/launch.cuh"

namespace keel::backend::cuda {

// One thread per (row, head, pair): rotate-half convention over the first rotary_dim dims.
__global__ void rope_kernel(float* x, int64_t rows, int heads, int head_dim, int rotary_dim,
                            const int32_t* positions, const float* inv_freq, float attention_factor) {
  pdl_launch_dependents();
  pdl_wait();
  const int half = rotary_dim / 2;
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= rows * heads * half) return;
  const int pair = static_cast<int>(i % half);
  const int64_t rh = i / half;
  const int64_t row = rh / heads;
  const float angle = static_cast<float>(positions[row]) * inv_freq[pair];
  float s, c;
  sincosf(angle, &s, &c);
  c *= attention_factor;
  s *= attention_factor;
  float* v = x + rh * head_dim;
  const float x1 = v[pair], x2 = v[pair + half];
  v[pair] = x1 * c - x2 * s;
  v[pair + half] = x2 * c + x1 * s;
}

template <typename T>
__global__ void write_kv_kernel(const float* k, const float* v, const int32_t* slots, int64_t tokens, int64_t width,
                                T* k_cache, T* v_cache) {
  pdl_launch_dependents();
  pdl_wait();
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= tokens * width) return;
  const int64_t t = i / width, d = i % width;
  const int64_t dst = static_cast<int64_t>(slots[t]) * width + d;
  k_cache[dst] = from_f<T>(k[i]);
  v_cache[dst] = from_f<T>(v[i]);
}

// rope over q and k, then k and v stored at each row's KV slot: one warp per (row, head) of q and of k. The
// rotation is rope_kernel's, term for term; a k head's warp also stores the head's V. Every load comes before
// the first store (lane l holds pairs l, l+32, ... and dims l, l+32, ...), so a warp waits for memory once, not
// once per loop iteration. Needs head_dim <= 32 * kMaxDimsPerLane.
template <typename T>
__global__ void rope_write_kv_kernel(float* q, float* k, const float* v, int64_t rows, int heads, int kv_heads,
                                     int head_dim, int rotary_dim, const int32_t* positions, const float* inv_freq,
                                     float attention_factor, const int32_t* slots, T* k_cache, T* v_cache) {
  pdl_launch_dependents();
  pdl_wait();
  const int64_t task = blockIdx.x * static_cast<int64_t>(blockDim.x >> 5) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  const int per_row = heads + kv_heads;
  if (task >= rows * per_row) return;
  const int64_t row = task / per_row;
  const int h = static_cast<int>(task % per_row);
  const bool is_k = h >= heads;
  const int kvh = h - heads;
  float* x = is_k ? k + (row * kv_heads + kvh) * head_dim : q + (row * heads + h) * head_dim;
  const int half = rotary_dim / 2;
  constexpr int kPairs = kMaxDimsPerLane / 2;
  float x1[kPairs], x2[kPairs], freq[kPairs], rest[kMaxDimsPerLane], vv[kMaxDimsPerLane];
#pragma unroll
  for (int i = 0; i < kPairs; i++) {
    const int pair = lane + 32 * i;
    const bool in = pair < half;
    x1[i] = in ? x[pair] : 0.0f;
    x2[i] = in ? x[pair + half] : 0.0f;
    freq[i] = in ? inv_freq[pair] : 0.0f;
  }
  const float* vr = v + (row * kv_heads + kvh) * head_dim;
#pragma unroll
  for (int i = 0; i < kMaxDimsPerLane; i++) {
    const int d = lane + 32 * i;
    rest[i] = is_k && d >= rotary_dim && d < head_dim ? x[d] : 0.0f;
    vv[i] = is_k && d < head_dim ? vr[d] : 0.0f;
  }
  const float pos = static_cast<float>(positions[row]);
  const int64_t cache_at = is_k ? (static_cast<int64_t>(slots[row]) * kv_heads + kvh) * head_dim : 0;
#pragma unroll
  for (int i = 0; i < kPairs; i++) {
    const int pair = lane + 32 * i;
    if (pair >= half) continue;
    const float angle = pos * freq[i];
    float s, c;
    sincosf(angle, &s, &c);
    c *= attention_factor;
    s *= attention_factor;
    const float y1 = x1[i] * c - x2[i] * s, y2 = x2[i] * c + x1[i] * s;
    x[pair] = y1;
    x[pair + half] = y2;
    if (is_k) {
      k_cache[cache_at + pair] = from_f<T>(y1);
      k_cache[cache_at + pair + half] = from_f<T>(y2);
    }
  }
  if (!is_k) return;
#pragma unroll
  for (int i = 0; i < kMaxDimsPerLane; i++) {
    const int d = lane + 32 * i;
    if (d >= head_dim) continue;
    if (d >= rotary_dim) k_cache[cache_at + d] = from_f<T>(rest[i]);
    v_cache[cache_at + d] = from_f<T>(vv[i]);
  }
}

}  // namespace keel::backend::cuda
