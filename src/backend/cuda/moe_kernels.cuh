// Kernels of the mixture-of-experts op. Everything is sized on the device: routing (router dot products,
// softmax, top-k) and grouping by expert write device arrays that the expert kernels read, and grids cover
// the worst case with idle blocks returning at once, so no count goes to the host and a decode step can be
// captured in a CUDA graph. Included by moe.cu only (the top-k, grouping and combine kernels are not templates).
//
// Layout of the grouping, for P = tokens x top_k (token, expert) pairs, pair p = t * top_k + j:
//   topk_ids[p], topk_weights[p]  token t's j-th expert in ascending id order, and its routing weight
//   pair_row[p]                   the pair's row in the expert-grouped order (rows of one expert adjacent)
//   row_token[row]                the token of each grouped row
//   active[0..E)                  ids of the experts some token chose, ascending; active[E + a] their first
//                                 grouped row, active[2E + a] their row count; active[3E] how many there are
#pragma once

#include "backend/cuda/device_math.cuh"

namespace keel::backend::cuda {

// One expert's weights on the device; null where another tensor-parallel rank holds the expert.
struct ExpertPtrs {
  const void* gate;  // [inter, hidden]
  const void* up;    // [inter, hidden]
  const void* down;  // [hidden, inter]
};

constexpr int kMoeWarps = 8;      // warps per block of the dot-product kernels, one weight row each
constexpr int kMoeMaxTopK = 32;   // the top-k kernel keeps one selected expert per lane
constexpr int kTopkWarps = 4;     // tokens per block of the top-k kernel

// Eight consecutive elements of a row as float; `left` elements remain in the row. VEC: one 16-byte load
// (row and pointer 16-byte aligned, length a multiple of 8); otherwise element by element, zero past the end.
template <bool VEC, typename T>
__device__ __forceinline__ void load8_row(const T* p, int left, float* out) {
  if constexpr (VEC) {
    load8(p, out);
  } else {
#pragma unroll
    for (int i = 0; i < 8; i++) out[i] = i < left ? to_f(p[i]) : 0.0f;
  }
}

// acc[r][j] = dot(w[r][0, K), x[j][0, K)) for R weight rows and NT input rows, of which the first nt are
// real (the rest repeat a real row and are ignored). Each lane sums its chunks of eight (lane, lane + 32, ...)
// in order and the warp then adds the lanes: the bits of one dot depend only on its two rows, never on what
// else is in the batch, so a token's MoE output is the same alone or batched. Every lane gets the sums.
template <int R, int NT, bool VEC, typename TW, typename TX>
__device__ __forceinline__ void warp_dots(const TW* const (&w)[R], const TX* const (&x)[NT], int nt, int K,
                                          float (&acc)[R][NT]) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int r = 0; r < R; r++)
#pragma unroll
    for (int j = 0; j < NT; j++) acc[r][j] = 0.0f;
  // One row per warp (decode): four chunks in flight per lane; more rows: two, to bound registers.
#pragma unroll(NT == 1 ? 4 : 2)
  for (int k = lane * 8; k < K; k += 256) {
    float wv[R][8];
#pragma unroll
    for (int r = 0; r < R; r++) load8_row<VEC>(w[r] + k, K - k, wv[r]);
#pragma unroll
    for (int j = 0; j < NT; j++) {
      if (j < nt) {
        float xv[8];
        load8_row<VEC>(x[j] + k, K - k, xv);
#pragma unroll
        for (int r = 0; r < R; r++)
#pragma unroll
          for (int i = 0; i < 8; i++) acc[r][j] = fmaf(wv[r][i], xv[i], acc[r][j]);
      }
    }
  }
#pragma unroll
  for (int r = 0; r < R; r++)
#pragma unroll
    for (int j = 0; j < NT; j++) acc[r][j] = warp_sum(acc[r][j]);
}

// logits[t][e] = router[e] . x[t]: one warp per expert row, for the NT tokens of this block's tile (grid.y).
// (cuBLAS would pick its algorithm by batch size, and then a near-tie could route a token differently alone
// than batched.)
template <typename T, int NT, bool VEC>
__global__ void __launch_bounds__(kMoeWarps * 32)
    moe_router_kernel(const T* x, const T* router, int tokens, int experts, int hidden, float* logits) {
  const int e = blockIdx.x * kMoeWarps + (threadIdx.x >> 5);
  if (e >= experts) return;
  const int t0 = blockIdx.y * NT;
  const int nt = min(NT, tokens - t0);
  const T* const w[1] = {router + static_cast<int64_t>(e) * hidden};
  const T* xs[NT];
#pragma unroll
  for (int j = 0; j < NT; j++) xs[j] = x + static_cast<int64_t>(t0 + min(j, nt - 1)) * hidden;
  float acc[1][NT];
  warp_dots<1, NT, VEC>(w, xs, nt, hidden, acc);
  if ((threadIdx.x & 31) == 0) {
#pragma unroll
    for (int j = 0; j < NT; j++)
      if (j < nt) logits[static_cast<int64_t>(t0 + j) * experts + e] = acc[0][j];
  }
}

// One warp per token: softmax over all experts, the top_k most probable (ties to the lower id, as the CPU
// oracle's stable sort), optionally renormalised to sum to one; written in ascending expert order, the order
// in which the oracle adds the experts' outputs. Dynamic shared memory: kTopkWarps x experts floats.
__global__ void __launch_bounds__(kTopkWarps * 32)
    moe_topk_kernel(const float* logits, int tokens, int experts, int top_k, bool renormalize, int32_t* topk_ids,
                    float* topk_weights) {
  extern __shared__ float probs_all[];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t t = static_cast<int64_t>(blockIdx.x) * kTopkWarps + warp;
  if (t >= tokens) return;
  float* p = probs_all + warp * experts;
  const float* l = logits + t * experts;
  float mx = -INFINITY;
  for (int e = lane; e < experts; e += 32) mx = fmaxf(mx, l[e]);
  for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
  float sum = 0.0f;
  for (int e = lane; e < experts; e += 32) {
    const float v = expf(l[e] - mx);
    p[e] = v;
    sum += v;
  }
  sum = warp_sum(sum);
  for (int e = lane; e < experts; e += 32) p[e] /= sum;
  __syncwarp();
  // k rounds of a warp arg-max; a chosen expert's probability becomes -1 (below any probability).
  int my_id = 0;
  float my_p = 0.0f;
  for (int j = 0; j < top_k; j++) {
    float bv = -INFINITY;
    int bi = 0x7fffffff;
    for (int e = lane; e < experts; e += 32) {
      const float v = p[e];
      if (v > bv) bv = v, bi = e;  // ascending e: a tie keeps the lower id
    }
    for (int o = 16; o > 0; o >>= 1) {
      const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
      const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
      if (ov > bv || (ov == bv && oi < bi)) bv = ov, bi = oi;
    }
    if (lane == j) my_id = bi, my_p = bv;
    __syncwarp();
    if (lane == 0) p[bi] = -1.0f;
    __syncwarp();
  }
  // The oracle sums the chosen probabilities in the order it chose them.
  float top = 0.0f;
  for (int j = 0; j < top_k; j++) top += __shfl_sync(0xffffffffu, my_p, j);
  int rank = 0;
  for (int j = 0; j < top_k; j++) rank += __shfl_sync(0xffffffffu, my_id, j) < my_id;
  if (lane < top_k) {
    topk_ids[t * top_k + rank] = my_id;
    topk_weights[t * top_k + rank] = renormalize ? my_p / top : my_p;
  }
}

// One block: counts the pairs of each expert, lays the experts' rows out in ascending expert order, and lists
// the active experts (see the layout above). A pair's place among its expert's rows is arbitrary (atomics);
// nothing computed depends on it. Dynamic shared memory: 2 x experts ints.
__global__ void __launch_bounds__(256)
    moe_group_kernel(const int32_t* topk_ids, int pairs, int top_k, int experts, int32_t* pair_row,
                     int32_t* row_token, int32_t* active) {
  extern __shared__ int32_t group_smem[];
  int32_t* count = group_smem;
  int32_t* first = group_smem + experts;
  for (int e = threadIdx.x; e < experts; e += blockDim.x) count[e] = 0;
  __syncthreads();
  for (int p = threadIdx.x; p < pairs; p += blockDim.x) pair_row[p] = atomicAdd(&count[topk_ids[p]], 1);
  __syncthreads();
  if (threadIdx.x < 32) {
    const int lane = threadIdx.x;
    int rows = 0, listed = 0;
    for (int base = 0; base < experts; base += 32) {
      const int e = base + lane;
      const int c = e < experts ? count[e] : 0;
      int incl = c;
      for (int o = 1; o < 32; o <<= 1) {
        const int v = __shfl_up_sync(0xffffffffu, incl, o);
        if (lane >= o) incl += v;
      }
      const int start = rows + incl - c;
      const unsigned used = __ballot_sync(0xffffffffu, c > 0);
      if (e < experts) first[e] = start;
      if (c > 0) {
        const int a = listed + __popc(used & ((1u << lane) - 1));
        active[a] = e;
        active[experts + a] = start;
        active[2 * experts + a] = c;
      }
      rows += __shfl_sync(0xffffffffu, incl, 31);
      listed += __popc(used);
    }
    if (lane == 0) active[3 * experts] = listed;
  }
  __syncthreads();
  for (int p = threadIdx.x; p < pairs; p += blockDim.x) {
    const int row = first[topk_ids[p]] + pair_row[p];
    pair_row[p] = row;
    row_token[row] = p / top_k;
  }
}

// act[row][i] = act(gate[i] . x[token]) * (up[i] . x[token]) for every grouped row of active expert
// blockIdx.y: one warp per intermediate index i, its gate and up rows read once for all of the expert's tokens
// (NT at a time; the tokens' rows come from L1/L2).
template <typename T, int NT, bool VEC>
__global__ void __launch_bounds__(kMoeWarps * 32)
    moe_gate_up_kernel(const T* x, const ExpertPtrs* table, const int32_t* active, const int32_t* row_token,
                       int experts, int hidden, int inter, bool gelu, float* act) {
  const int a = blockIdx.y;
  if (a >= active[3 * experts]) return;
  const ExpertPtrs ex = table[active[a]];
  const int i = blockIdx.x * kMoeWarps + (threadIdx.x >> 5);
  if (ex.gate == nullptr || i >= inter) return;
  const int first = active[experts + a], n = active[2 * experts + a];
  const T* const w[2] = {static_cast<const T*>(ex.gate) + static_cast<int64_t>(i) * hidden,
                         static_cast<const T*>(ex.up) + static_cast<int64_t>(i) * hidden};
  for (int tile = 0; tile < n; tile += NT) {
    const int nt = min(NT, n - tile);
    const T* xs[NT];
#pragma unroll
    for (int j = 0; j < NT; j++) xs[j] = x + static_cast<int64_t>(row_token[first + tile + min(j, nt - 1)]) * hidden;
    float acc[2][NT];
    warp_dots<2, NT, VEC>(w, xs, nt, hidden, acc);
    if ((threadIdx.x & 31) == 0) {
#pragma unroll
      for (int j = 0; j < NT; j++)
        if (j < nt)
          act[static_cast<int64_t>(first + tile + j) * inter + i] = glu_activation(acc[0][j], gelu) * acc[1][j];
    }
  }
}

// y[row][d] = down[d] . act[row] for every grouped row of active expert blockIdx.y: one warp per output index
// d. Rows of another rank's expert get zeros (it contributes nothing here).
template <typename T, int NT, bool VEC>
__global__ void __launch_bounds__(kMoeWarps * 32)
    moe_down_kernel(const float* act, const ExpertPtrs* table, const int32_t* active, int experts, int hidden,
                    int inter, float* y) {
  const int a = blockIdx.y;
  if (a >= active[3 * experts]) return;
  const ExpertPtrs ex = table[active[a]];
  const int d = blockIdx.x * kMoeWarps + (threadIdx.x >> 5);
  if (d >= hidden) return;
  const int first = active[experts + a], n = active[2 * experts + a];
  const int lane = threadIdx.x & 31;
  if (ex.down == nullptr) {
    for (int r = lane; r < n; r += 32) y[static_cast<int64_t>(first + r) * hidden + d] = 0.0f;
    return;
  }
  const T* const w[1] = {static_cast<const T*>(ex.down) + static_cast<int64_t>(d) * inter};
  for (int tile = 0; tile < n; tile += NT) {
    const int nt = min(NT, n - tile);
    const float* xs[NT];
#pragma unroll
    for (int j = 0; j < NT; j++) xs[j] = act + static_cast<int64_t>(first + tile + min(j, nt - 1)) * inter;
    float acc[1][NT];
    warp_dots<1, NT, VEC>(w, xs, nt, inter, acc);
    if (lane == 0) {
#pragma unroll
      for (int j = 0; j < NT; j++)
        if (j < nt) y[static_cast<int64_t>(first + tile + j) * hidden + d] = acc[0][j];
    }
  }
}

// out[t] = sum over token t's experts, in ascending id order, of weight * y[its row]: a block per (256 columns,
// token), the token's rows and weights in shared memory so that its top_k loads of y are in flight together
// (one block per token walking the columns made a serial chain of L2 round trips at batch 1).
constexpr int kCombineThreads = 256;
__global__ void __launch_bounds__(kCombineThreads)
    moe_combine_kernel(const float* y, const int32_t* pair_row, const float* topk_weights, int top_k, int hidden,
                       float* out) {
  __shared__ int32_t rows[kMoeMaxTopK];
  __shared__ float weights[kMoeMaxTopK];
  const int64_t t = blockIdx.y;
  if (threadIdx.x < top_k) {
    rows[threadIdx.x] = pair_row[t * top_k + threadIdx.x];
    weights[threadIdx.x] = topk_weights[t * top_k + threadIdx.x];
  }
  __syncthreads();
  const int d = blockIdx.x * kCombineThreads + threadIdx.x;
  if (d >= hidden) return;
  float acc = 0.0f;
#pragma unroll 8
  for (int j = 0; j < top_k; j++) acc += y[static_cast<int64_t>(rows[j]) * hidden + d] * weights[j];
  out[t * hidden + d] = acc;
}

}  // namespace keel::backend::cuda
