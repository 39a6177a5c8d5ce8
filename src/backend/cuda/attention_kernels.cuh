// Attention over the paged KV cache for single-token rows (decode) and, where the tiled kernel
// (flash_prefill.cuh) does not apply, for every row: a warp per (row, head), or a block per (row, KV head) for
// the whole query group with split-K over the keys. Each kernel starts with pdl_launch_dependents and pdl_wait
// (launch.cuh). Checked against the CPU oracle in cuda_backend_test.cpp.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda/device_math.cuh"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/seq_info.h"

namespace keel::backend::cuda {

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

}  // namespace keel::backend::cuda
