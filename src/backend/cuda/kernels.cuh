// Device kernels of the CUDA backend. Element type T is the activation/weight dtype (float, bf16 or half);
// every kernel accumulates in float. Each is checked against the CPU oracle in cuda_backend_test.cpp.
// Each starts with pdl_launch_dependents and pdl_wait (launch.cuh): the backend may launch it with PDL.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda/launch.cuh"

namespace keel::backend::cuda {

__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_f(__half v) { return __half2float(v); }
template <typename T>
__device__ __forceinline__ T from_f(float v);
template <>
__device__ __forceinline__ float from_f<float>(float v) { return v; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v) { return __float2bfloat16(v); }
template <>
__device__ __forceinline__ __half from_f<__half>(float v) { return __float2half(v); }

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// SiLU, or GELU with the tanh approximation (gelu_pytorch_tanh).
__device__ __forceinline__ float glu_activation(float g, bool gelu) {
  if (gelu) {
    const float k = 0.7978845608028654f;  // sqrt(2/pi)
    return 0.5f * g * (1.0f + tanhf(k * (g + 0.044715f * g * g * g)));
  }
  return g / (1.0f + __expf(-g));
}

// The sum of v over the block (any multiple of 32 threads up to 1024), returned to every thread.
__device__ __forceinline__ float block_sum(float v) {
  __shared__ float partial[32];
  v = warp_sum(v);
  if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = v;
  __syncthreads();
  if (threadIdx.x < 32) {
    float w = threadIdx.x < (blockDim.x >> 5) ? partial[threadIdx.x] : 0.0f;
    w = warp_sum(w);
    if (threadIdx.x == 0) partial[0] = w;
  }
  __syncthreads();
  return partial[0];
}

// Per-sequence metadata of a flattened batch, uploaded once per forward.
struct SeqInfo {
  int32_t q_start;
  int32_t q_len;
  int32_t kv_len;
  int32_t table_offset;  // into the flattened block tables
};

template <typename T>
__global__ void embed_kernel(const T* table, const int32_t* tokens, int64_t dim, float scale, float* out) {
  pdl_launch_dependents();
  pdl_wait();
  const int64_t row = blockIdx.x;
  const T* src = table + static_cast<int64_t>(tokens[row]) * dim;
  for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) out[row * dim + d] = to_f(src[d]) * scale;
}

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

__global__ void add_kernel(const float* a, const float* b, float* out, int64_t n) {
  pdl_launch_dependents();
  pdl_wait();
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) out[i] = a[i] + b[i];
}

template <typename T>
__global__ void add_bias_kernel(float* out, const T* bias, int64_t rows, int64_t cols) {
  pdl_launch_dependents();
  pdl_wait();
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < rows * cols) out[i] += to_f(bias[i % cols]);
}

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
constexpr int kMaxDimsPerLane = 8;  // head_dim <= 256

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

// One warp per (query row, head): online softmax over the row's causal (optionally windowed) keys, read
// through the sequence's block table. Lane l holds dims l, l+32, ... of q and of the output.
template <typename T>
__global__ void attention_kernel(const float* q, const T* k_cache, const T* v_cache, const int32_t* positions,
                                 const int32_t* row_seq, const SeqInfo* seqs, const int32_t* block_tables,
                                 int64_t rows, int heads, int kv_heads, int head_dim, int block_size, float scale,
                                 int window, float softcap, T* out, bool single_rows_only) {
  pdl_launch_dependents();
  pdl_wait();
  const int warps_per_block = blockDim.x >> 5;
  const int64_t task = blockIdx.x * static_cast<int64_t>(warps_per_block) + (threadIdx.x >> 5);
  if (task >= rows * heads) return;
  const int lane = threadIdx.x & 31;
  const int64_t row = task / heads;
  const int h = static_cast<int>(task % heads);
  const int kvh = h / (heads / kv_heads);
  const SeqInfo seq = seqs[row_seq[row]];
  if (single_rows_only && seq.q_len > 1) return;  // the flash prefill kernel takes this sequence
  const int32_t* table = block_tables + seq.table_offset;
  const int pos = positions[row];
  const int lo = window > 0 ? max(0, pos - window + 1) : 0;
  const int64_t kv_width = static_cast<int64_t>(kv_heads) * head_dim;

  float qv[kMaxDimsPerLane], acc[kMaxDimsPerLane];
#pragma unroll
  for (int i = 0; i < kMaxDimsPerLane; i++) {
    const int d = lane + 32 * i;
    qv[i] = d < head_dim ? q[row * heads * head_dim + h * head_dim + d] : 0.0f;
    acc[i] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  for (int j = lo; j <= pos; j++) {
    const int64_t slot = static_cast<int64_t>(table[j / block_size]) * block_size + j % block_size;
    const T* kp = k_cache + slot * kv_width + kvh * head_dim;
    float partial = 0.0f;
#pragma unroll
    for (int i = 0; i < kMaxDimsPerLane; i++) {
      const int d = lane + 32 * i;
      if (d < head_dim) partial += qv[i] * to_f(kp[d]);
    }
    float score = warp_sum(partial) * scale;
    if (softcap > 0.0f) score = softcap * tanhf(score / softcap);
    const float m_new = fmaxf(m, score);
    const float alpha = __expf(m - m_new);
    const float p = __expf(score - m_new);
    l = l * alpha + p;
    const T* vp = v_cache + slot * kv_width + kvh * head_dim;
#pragma unroll
    for (int i = 0; i < kMaxDimsPerLane; i++) {
      const int d = lane + 32 * i;
      if (d < head_dim) acc[i] = acc[i] * alpha + p * to_f(vp[d]);
    }
    m = m_new;
  }
  const float inv = 1.0f / l;
#pragma unroll
  for (int i = 0; i < kMaxDimsPerLane; i++) {
    const int d = lane + 32 * i;
    if (d < head_dim) out[row * heads * head_dim + h * head_dim + d] = from_f<T>(acc[i] * inv);
  }
}

// Eight consecutive elements as float, with one 16-byte load for 2-byte types (p must be 16-byte aligned).
__device__ __forceinline__ void load8(const __nv_bfloat16* p, float* out) {
  const uint4 raw = *reinterpret_cast<const uint4*>(p);
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
  for (int i = 0; i < 4; i++) {
    const float2 f = __bfloat1622float2(h[i]);
    out[2 * i] = f.x;
    out[2 * i + 1] = f.y;
  }
}
__device__ __forceinline__ void load8(const __half* p, float* out) {
  const uint4 raw = *reinterpret_cast<const uint4*>(p);
  const __half2* h = reinterpret_cast<const __half2*>(&raw);
#pragma unroll
  for (int i = 0; i < 4; i++) {
    const float2 f = __half22float2(h[i]);
    out[2 * i] = f.x;
    out[2 * i + 1] = f.y;
  }
}
__device__ __forceinline__ void load8(const float* p, float* out) {
  const float4 a = *reinterpret_cast<const float4*>(p);
  const float4 b = *reinterpret_cast<const float4*>(p + 4);
  out[0] = a.x, out[1] = a.y, out[2] = a.z, out[3] = a.w, out[4] = b.x, out[5] = b.y, out[6] = b.z, out[7] = b.w;
}

// One block of kTileKeys threads per (query row, KV head), for all `group` query heads sharing that KV head:
// each K/V element is read once per row instead of once per query head. Keys go in tiles of kTileKeys with an
// online softmax across tiles. Scores: one key per thread, its row read in 16-byte pieces. Values: warp w takes
// keys w, w+4, ... of the tile and lane l owns dims [l*DPL, (l+1)*DPL), so each key's row is one coalesced
// read; the four warps' partial sums are added at the end. Needs head_dim % 32 == 0 and head_dim <= 256.
constexpr int kMaxGroup = 8;
constexpr int kTileKeys = 128;
constexpr int kWarps = kTileKeys / 32;
// Split-K shares hold at least this many keys: a share costs a block and a term of the join whatever its length,
// and up to 32 keys its V pass is still one round of loads per warp.
constexpr int kMinShareKeys = 32;

// Joins the split-K shares [0, shares) of (row, KV head): rescales each to the common max and normalises. The
// block's threads split the group's outputs. The partials come from other blocks: read through L2 (.cg).
template <typename T>
__device__ void join_shares(const float* part_ml, const float* part_acc, int64_t row, int kvh, int heads,
                            int kv_heads, int head_dim, int splits, int shares, T* out) {
  const int group = heads / kv_heads;
  const int64_t base = (row * kv_heads + kvh) * splits;
  for (int i = threadIdx.x; i < group * head_dim; i += blockDim.x) {
    const int g = i / head_dim, d = i % head_dim;
    float m = -INFINITY;
    for (int s = 0; s < shares; s++) m = fmaxf(m, __ldcg(part_ml + ((base + s) * group + g) * 2));
    float l = 0.0f, acc = 0.0f;
    for (int s = 0; s < shares; s++) {
      const float ms = __ldcg(part_ml + ((base + s) * group + g) * 2);
      if (ms == -INFINITY) continue;  // an empty share
      const float w = __expf(ms - m);
      l += __ldcg(part_ml + ((base + s) * group + g) * 2 + 1) * w;
      acc += __ldcg(part_acc + ((base + s) * group + g) * head_dim + d) * w;
    }
    out[row * heads * head_dim + (kvh * group + g) * head_dim + d] = from_f<T>(acc / l);
  }
}

template <typename T, int DPL>
__global__ void __launch_bounds__(kTileKeys) attention_group_kernel(
    const float* q, const T* k_cache, const T* v_cache, const int32_t* positions, const int32_t* row_seq,
    const SeqInfo* seqs, const int32_t* block_tables, int heads, int kv_heads, int head_dim, int block_size,
    float scale, int window, float softcap, T* out, int splits, float* part_ml, float* part_acc,
    int* share_counts, bool single_rows_only) {
  pdl_launch_dependents();
  pdl_wait();
  extern __shared__ float smem[];
  const int group = heads / kv_heads;
  float* qs = smem;                          // [group][head_dim], pre-scaled
  float* ps = qs + group * head_dim;         // [group][kTileKeys] probabilities of the tile
  float* part = ps + group * kTileKeys;      // [kWarps][group][head_dim] partial outputs
  __shared__ int64_t slot_s[kTileKeys];
  __shared__ float red[kWarps][kMaxGroup];
  __shared__ float m_s[kMaxGroup], l_s[kMaxGroup], alpha_s[kMaxGroup];

  const int64_t row = blockIdx.x;
  const int kvh = blockIdx.y;
  const int t = threadIdx.x, lane = t & 31, warp = t >> 5;
  const SeqInfo seq = seqs[row_seq[row]];
  if (single_rows_only && seq.q_len > 1) return;  // the flash prefill kernel takes this sequence (whole block)
  const int32_t* table = block_tables + seq.table_offset;
  const int pos_q = positions[row];
  const int lo_q = window > 0 ? max(0, pos_q - window + 1) : 0;
  // Split-K (flash-decoding): block z takes one contiguous share of this row's keys; the shares are sized on
  // the device, from the row's own length, so a captured graph stays valid as sequences grow.
  const int split = blockIdx.z;
  const int len = pos_q - lo_q + 1;
  const int share = max((len + splits - 1) / splits, kMinShareKeys);
  const int shares = (len + share - 1) / share;  // the non-empty ones, first
  const int lo = lo_q + split * share;
  const int pos = min(pos_q, lo + share - 1);  // the last key of this share; < lo when the share is empty
  // With share_counts the last share to finish joins the others, which never counts the empty ones.
  if (share_counts != nullptr && split >= shares) return;
  const int64_t kv_width = static_cast<int64_t>(kv_heads) * head_dim;

  for (int i = t; i < group * head_dim; i += kTileKeys) {
    const int g = i / head_dim, d = i % head_dim;
    qs[i] = q[row * heads * head_dim + (kvh * group + g) * head_dim + d] * scale;
  }
  if (t < kMaxGroup) {
    m_s[t] = -INFINITY;
    l_s[t] = 0.0f;
  }
  float acc[kMaxGroup][DPL];
#pragma unroll
  for (int g = 0; g < kMaxGroup; g++)
#pragma unroll
    for (int i = 0; i < DPL; i++) acc[g][i] = 0.0f;
  __syncthreads();

  for (int tile = lo; tile <= pos; tile += kTileKeys) {
    const int j = tile + t;
    float s[kMaxGroup];
#pragma unroll
    for (int g = 0; g < kMaxGroup; g++) s[g] = 0.0f;
    if (j <= pos) {
      const int64_t slot = static_cast<int64_t>(table[j / block_size]) * block_size + j % block_size;
      slot_s[t] = slot;
      const T* kp = k_cache + slot * kv_width + kvh * head_dim;
      for (int d = 0; d < head_dim; d += 8) {
        float kd[8];
        load8(kp + d, kd);
#pragma unroll
        for (int g = 0; g < kMaxGroup; g++) {
          if (g < group) {
            const float* qg = qs + g * head_dim + d;
#pragma unroll
            for (int e = 0; e < 8; e++) s[g] += qg[e] * kd[e];
          }
        }
      }
    }
#pragma unroll
    for (int g = 0; g < kMaxGroup; g++) {
      if (g >= group) break;
      float v = j <= pos ? (softcap > 0.0f ? softcap * tanhf(s[g] / softcap) : s[g]) : -INFINITY;
      s[g] = v;
      for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
      if (lane == 0) red[warp][g] = v;
    }
    __syncthreads();
    if (t < group) {
      float mx = m_s[t];
      for (int w = 0; w < kWarps; w++) mx = fmaxf(mx, red[w][t]);
      alpha_s[t] = __expf(m_s[t] - mx);  // 0 on the first tile (m was -inf)
      m_s[t] = mx;
    }
    __syncthreads();
#pragma unroll
    for (int g = 0; g < kMaxGroup; g++) {
      if (g >= group) break;
      const float p = j <= pos ? __expf(s[g] - m_s[g]) : 0.0f;
      ps[g * kTileKeys + t] = p;
      const float sum = warp_sum(p);
      if (lane == 0) red[warp][g] = sum;
    }
    __syncthreads();
    if (t < group) {
      float sum = 0.0f;
      for (int w = 0; w < kWarps; w++) sum += red[w][t];
      l_s[t] = l_s[t] * alpha_s[t] + sum;
    }
#pragma unroll
    for (int g = 0; g < kMaxGroup; g++) {
      if (g >= group) break;
#pragma unroll
      for (int i = 0; i < DPL; i++) acc[g][i] *= alpha_s[g];
    }
    const int n = min(kTileKeys, pos - tile + 1);
#pragma unroll 4
    for (int jj = warp; jj < n; jj += kWarps) {
      const T* vp = v_cache + slot_s[jj] * kv_width + kvh * head_dim + lane * DPL;
      float v[DPL];
#pragma unroll
      for (int i = 0; i < DPL; i++) v[i] = to_f(vp[i]);
#pragma unroll
      for (int g = 0; g < kMaxGroup; g++) {
        if (g >= group) break;
        const float p = ps[g * kTileKeys + jj];
#pragma unroll
        for (int i = 0; i < DPL; i++) acc[g][i] += p * v[i];
      }
    }
    __syncthreads();
  }
  // Add the warps' partial outputs.
#pragma unroll
  for (int g = 0; g < kMaxGroup; g++) {
    if (g >= group) break;
#pragma unroll
    for (int i = 0; i < DPL; i++) part[(warp * group + g) * head_dim + lane * DPL + i] = acc[g][i];
  }
  __syncthreads();
  const int64_t task = (row * kv_heads + kvh) * splits + split;
  for (int i = t; i < group * head_dim; i += kTileKeys) {
    const int g = i / head_dim, d = i % head_dim;
    float sum = 0.0f;
    for (int w = 0; w < kWarps; w++) sum += part[(w * group + g) * head_dim + d];
    if (splits == 1) out[row * heads * head_dim + (kvh * group + g) * head_dim + d] = from_f<T>(sum / l_s[g]);
    else part_acc[(task * group + g) * head_dim + d] = sum;  // unnormalised, relative to this share's max
  }
  if (splits > 1 && t < group) {
    part_ml[(task * group + t) * 2] = m_s[t];
    part_ml[(task * group + t) * 2 + 1] = l_s[t];
  }
  if (splits == 1 || share_counts == nullptr) return;
  // Count this share done (its partials visible first); the block that completes the count joins them all and
  // leaves the counter at 0 for the next launch. No separate combine kernel: one launch fewer per layer.
  __threadfence();
  __syncthreads();
  __shared__ bool last;
  int* count = share_counts + row * kv_heads + kvh;
  if (t == 0) last = atomicAdd(count, 1) == shares - 1;
  __syncthreads();
  if (!last) return;
  __threadfence();
  join_shares(part_ml, part_acc, row, kvh, heads, kv_heads, head_dim, splits, shares, out);
  if (t == 0) *count = 0;
}

// Joins the split-K shares of each (row, KV head) when attention_group_kernel ran without share counts.
template <typename T>
__global__ void attention_combine_kernel(const float* part_ml, const float* part_acc, int heads, int kv_heads,
                                         int head_dim, int splits, T* out) {
  pdl_launch_dependents();
  pdl_wait();
  join_shares(part_ml, part_acc, blockIdx.x, blockIdx.y, heads, kv_heads, head_dim, splits, splits, out);
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
