// Flash-attention-2 prefill over the paged KV cache (promoted from dev/kernels/flash_prefill_v1.cu, where its
// microbenchmark and the variants it beat live). Included by cuda_backend.cu after kernels.cuh (SeqInfo).
//
// One CTA = one tile of query tokens of one sequence x one KV head. The group's query heads are packed into the
// tile's rows (row m = token * group + head-in-group), so each K/V tile gathered from the paged cache serves the
// whole group. Per KV tile of BN keys: S = Q K^T and O += P V with mma.sync m16n8k16 (bf16/f16 in, f32
// accumulate), online softmax in f32 (log2 domain); K/V double-buffered with cp.async. Causal, sliding window,
// soft-cap, varlen with KV history (a tile's queries are the last q_len positions of its sequence's kv_len).
// Needs head_dim % 16 == 0 and a 2-byte KV dtype; other shapes take the per-row kernels.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace keel::backend::cuda {

namespace flash {

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
// 16 bytes global -> shared, asynchronously; !valid writes 16 zero bytes (src must still be a valid address).
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(dst)), "l"(src),
               "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

__device__ __forceinline__ void ldmatrix_x4(uint32_t* r, const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t* r, const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(p)));
}

template <typename T>
__device__ __forceinline__ void mma16816(float* c, const uint32_t* a, uint32_t b0, uint32_t b1);
template <>
__device__ __forceinline__ void mma16816<__nv_bfloat16>(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma16816<__half>(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

template <typename T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <>
__device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}
template <>
__device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
  __half2 v = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}

__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

}  // namespace flash

// HD: head_dim; WARPS: 16 packed query rows each; BN: keys per K/V tile. tiles[i] = (sequence, first token);
// CTA b handles tile b / kv_heads, KV head b % kv_heads.
template <typename T, int HD, int WARPS, int BN>
__global__ void __launch_bounds__(WARPS * 32) flash_prefill_kernel(
    const float* __restrict__ q, const T* __restrict__ k_cache, const T* __restrict__ v_cache,
    const SeqInfo* __restrict__ seqs, const int32_t* __restrict__ block_tables, const int2* __restrict__ tiles,
    int heads, int kv_heads, int block_size, float scale, int window, float softcap, T* __restrict__ out) {
  using namespace flash;
  constexpr int BM = 16 * WARPS, NT = WARPS * 32;
  constexpr int LD = HD + 8;  // +16 bytes a row: the 8 rows of an ldmatrix land in different banks
  constexpr int CH = HD / 8;  // 16-byte chunks a row
  constexpr float kLog2e = 1.4426950408889634f;
  extern __shared__ __align__(16) uint8_t flash_smem[];
  T* qs = reinterpret_cast<T*>(flash_smem);  // [BM][LD]
  T* ks = qs + BM * LD;                      // [2][BN][LD]
  T* vs = ks + 2 * BN * LD;                  // [2][BN][LD]

  const int kvh = blockIdx.x % kv_heads;
  const int2 tile = tiles[blockIdx.x / kv_heads];
  const SeqInfo seq = seqs[tile.x];
  const int group = heads / kv_heads;
  const int t0 = tile.y;
  const int rows = min(BM / group, seq.q_len - t0) * group;  // valid packed rows of this tile
  const int first_pos = seq.kv_len - seq.q_len + t0;          // position of the tile's first token
  const int p1 = first_pos + rows / group - 1;                // ... and of its last
  const int lo = window > 0 ? max(0, first_pos - window + 1) : 0;
  const int32_t* table = block_tables + seq.table_offset;
  const int64_t kv_width = static_cast<int64_t>(kv_heads) * HD;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int64_t row_stride = static_cast<int64_t>(heads) * HD;
  const int64_t head_off = static_cast<int64_t>(kvh) * group * HD;

  // Q, pre-scaled, to T. The packed rows of one token are contiguous in q (heads kvh*group .. +group-1).
  for (int i = tid; i < BM * (HD / 4); i += NT) {
    const int m = i / (HD / 4), c = (i % (HD / 4)) * 4;
    float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
    if (m < rows)
      v = *reinterpret_cast<const float4*>(q + (seq.q_start + t0 + m / group) * row_stride + head_off +
                                           (m % group) * HD + c);
    *reinterpret_cast<uint2*>(qs + m * LD + c) =
        make_uint2(pack2<T>(v.x * scale, v.y * scale), pack2<T>(v.z * scale, v.w * scale));
  }

  // Keys kt .. kt+BN-1 through the block table; those past the tile's last position become zeros (P is 0
  // there, and 0 * garbage could be NaN).
  auto load_kv = [&](int stage, int kt) {
    for (int i = tid; i < BN * CH; i += NT) {
      const int r = i / CH, c = (i % CH) * 8;
      const int j = kt + r;
      const bool valid = j <= p1;
      int64_t off = 0;
      if (valid)
        off = (static_cast<int64_t>(table[j / block_size]) * block_size + j % block_size) * kv_width + kvh * HD + c;
      cp_async16(ks + (stage * BN + r) * LD + c, k_cache + off, valid);
      cp_async16(vs + (stage * BN + r) * LD + c, v_cache + off, valid);
    }
    cp_async_commit();
  };

  const int n_tiles = (p1 - lo + BN) / BN;
  load_kv(0, lo);

  // This thread's two rows (lane/4 and lane/4 + 8 of the warp's 16); padding rows act as the last token.
  int pos[2];
#pragma unroll
  for (int h = 0; h < 2; h++) {
    const int m = warp * 16 + (lane >> 2) + 8 * h;
    pos[h] = m < rows ? first_pos + m / group : p1;
  }
  float m_i[2] = {-INFINITY, -INFINITY}, l_i[2] = {0.f, 0.f};
  float o[HD / 8][4];
#pragma unroll
  for (int i = 0; i < HD / 8; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;

  for (int it = 0; it < n_tiles; it++) {
    const int kt = lo + it * BN;
    cp_async_wait_all();
    __syncthreads();  // tile it is in; everyone is done with tile it-1, whose buffer the next load reuses
    if (it + 1 < n_tiles) load_kv((it + 1) & 1, kt + BN);
    const T* kb = ks + (it & 1) * BN * LD;
    const T* vb = vs + (it & 1) * BN * LD;

    float s[BN / 8][4];
#pragma unroll
    for (int i = 0; i < BN / 8; i++) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < HD / 16; kk++) {
      uint32_t a[4];
      ldmatrix_x4(a, qs + (warp * 16 + (lane & 15)) * LD + kk * 16 + (lane >> 4) * 8);
#pragma unroll
      for (int nn = 0; nn < BN / 16; nn++) {
        uint32_t b[4];
        ldmatrix_x4(b, kb + (nn * 16 + (lane & 7) + (lane >> 4) * 8) * LD + kk * 16 + ((lane >> 3) & 1) * 8);
        mma16816<T>(s[2 * nn], a, b[0], b[1]);
        mma16816<T>(s[2 * nn + 1], a, b[2], b[3]);
      }
    }

    // Soft-cap, mask, scores to log2 units. Only tiles crossing the diagonal or the window's edge need the mask.
    const bool need_mask = kt + BN - 1 > first_pos || (window > 0 && kt <= p1 - window);
#pragma unroll
    for (int ni = 0; ni < BN / 8; ni++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        float v = s[ni][e];
        if (softcap > 0.f) v = softcap * tanhf(v / softcap);  // not tanh.approx: x cap 50, its error is 0.02
        v *= kLog2e;
        if (need_mask) {
          const int j = kt + ni * 8 + (lane & 3) * 2 + (e & 1);
          const int p = pos[e >> 1];
          if (j > p || (window > 0 && j <= p - window)) v = -INFINITY;
        }
        s[ni][e] = v;
      }
    }
#pragma unroll
    for (int h = 0; h < 2; h++) {
      float mx = m_i[h];
#pragma unroll
      for (int ni = 0; ni < BN / 8; ni++) mx = fmaxf(mx, fmaxf(s[ni][2 * h], s[ni][2 * h + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_use = mx == -INFINITY ? 0.f : mx;  // a row with nothing visible yet stays at zero
      const float alpha = fast_exp2(m_i[h] - m_use);
      m_i[h] = mx;
      float sum = 0.f;
#pragma unroll
      for (int ni = 0; ni < BN / 8; ni++) {
        s[ni][2 * h] = fast_exp2(s[ni][2 * h] - m_use);
        s[ni][2 * h + 1] = fast_exp2(s[ni][2 * h + 1] - m_use);
        sum += s[ni][2 * h] + s[ni][2 * h + 1];
      }
      l_i[h] = l_i[h] * alpha + sum;  // this thread's share of the row; the quad is summed at the end
#pragma unroll
      for (int di = 0; di < HD / 8; di++) {
        o[di][2 * h] *= alpha;
        o[di][2 * h + 1] *= alpha;
      }
    }

    // O += P V: the score accumulators' layout is the A-operand layout of the next MMA.
#pragma unroll
    for (int kk = 0; kk < BN / 16; kk++) {
      uint32_t a[4];
      a[0] = pack2<T>(s[2 * kk][0], s[2 * kk][1]);
      a[1] = pack2<T>(s[2 * kk][2], s[2 * kk][3]);
      a[2] = pack2<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]);
      a[3] = pack2<T>(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
      for (int dn = 0; dn < HD / 16; dn++) {
        uint32_t b[4];
        ldmatrix_x4_trans(b, vb + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + dn * 16 + (lane >> 4) * 8);
        mma16816<T>(o[2 * dn], a, b[0], b[1]);
        mma16816<T>(o[2 * dn + 1], a, b[2], b[3]);
      }
    }
  }

  // Normalise; stage the warp's 16 rows in its own Q rows (no other warp reads them) for 16-byte stores.
#pragma unroll
  for (int h = 0; h < 2; h++) {
    l_i[h] += __shfl_xor_sync(0xffffffffu, l_i[h], 1);
    l_i[h] += __shfl_xor_sync(0xffffffffu, l_i[h], 2);
    l_i[h] = 1.f / l_i[h];
  }
  T* os = qs + warp * 16 * LD;
#pragma unroll
  for (int di = 0; di < HD / 8; di++) {
    const int c = di * 8 + (lane & 3) * 2;
    *reinterpret_cast<uint32_t*>(os + (lane >> 2) * LD + c) = pack2<T>(o[di][0] * l_i[0], o[di][1] * l_i[0]);
    *reinterpret_cast<uint32_t*>(os + ((lane >> 2) + 8) * LD + c) = pack2<T>(o[di][2] * l_i[1], o[di][3] * l_i[1]);
  }
  __syncwarp();
  for (int i = lane; i < 16 * CH; i += 32) {
    const int r = i / CH, c = (i % CH) * 8;
    const int m = warp * 16 + r;
    if (m < rows)
      *reinterpret_cast<uint4*>(out + (seq.q_start + t0 + m / group) * row_stride + head_off + (m % group) * HD + c) =
          *reinterpret_cast<const uint4*>(os + r * LD + c);
  }
}

// --- Host side.

// Largest GQA group the kernel packs (tiles of 64 rows keep >= 8 tokens each).
constexpr int kFlashMaxGroup = 8;

inline bool flash_prefill_supports(int head_dim, int group) {
  const bool dim = head_dim == 16 || head_dim == 32 || head_dim == 64 || head_dim == 96 || head_dim == 128 ||
                   head_dim == 256;
  return dim && group >= 1 && group <= kFlashMaxGroup;
}

// Rows of query (token x head) a CTA takes. 128-row tiles halve the K/V re-reads of long prompts; 64-row ones
// keep short ones from leaving SMs idle.
inline int flash_prefill_rows(int head_dim, int64_t tokens, int group, int kv_heads, int sm_count) {
  if (head_dim != 128) return 64;
  const int64_t ctas_128 = (tokens * group + 127) / 128 * kv_heads;
  return ctas_128 >= 4 * sm_count ? 128 : 64;
}

// The (sequence, first token) of every tile of `rows_per_tile` packed rows, heaviest (most keys) first, so the
// long tiles of a causal prompt do not start last.
inline void flash_prefill_tiles(const std::vector<SeqInfo>& seqs, int tokens_per_tile, std::vector<int2>* out) {
  struct Tile {
    int work, seq, t0;
  };
  std::vector<Tile> t;
  for (int s = 0; s < static_cast<int>(seqs.size()); s++) {
    const SeqInfo& q = seqs[s];
    for (int t0 = 0; t0 < q.q_len; t0 += tokens_per_tile)
      t.push_back({q.kv_len - q.q_len + std::min(t0 + tokens_per_tile, q.q_len), s, t0});
  }
  std::stable_sort(t.begin(), t.end(), [](const Tile& a, const Tile& b) { return a.work > b.work; });
  out->clear();
  for (const Tile& x : t) out->push_back(make_int2(x.seq, x.t0));
}

template <typename T, int HD, int WARPS, int BN>
cudaError_t launch_flash_prefill_cfg(const float* q, const T* k, const T* v, const SeqInfo* seqs, const int32_t* tables,
                                     const int2* tiles, int num_tiles, int heads, int kv_heads, int block_size,
                                     float scale, int window, float softcap, T* out, cudaStream_t stream) {
  auto kernel = flash_prefill_kernel<T, HD, WARPS, BN>;
  const size_t smem = static_cast<size_t>(16 * WARPS + 4 * BN) * (HD + 8) * sizeof(T);
  if (smem > 48 * 1024) {
    cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (e != cudaSuccess) return e;
  }
  kernel<<<static_cast<unsigned>(num_tiles) * kv_heads, WARPS * 32, smem, stream>>>(
      q, k, v, seqs, tables, tiles, heads, kv_heads, block_size, scale, window, softcap, out);
  return cudaGetLastError();
}

// rows_per_tile: 64 or 128 (flash_prefill_rows); head_dim: one flash_prefill_supports accepts.
template <typename T>
cudaError_t launch_flash_prefill(const float* q, const T* k, const T* v, const SeqInfo* seqs, const int32_t* tables,
                                 const int2* tiles, int num_tiles, int heads, int kv_heads, int head_dim,
                                 int block_size, float scale, int window, float softcap, int rows_per_tile, T* out,
                                 cudaStream_t stream) {
#define KEEL_FLASH(HD, W, BN)                                                                                \
  return launch_flash_prefill_cfg<T, HD, W, BN>(q, k, v, seqs, tables, tiles, num_tiles, heads, kv_heads, \
                                                block_size, scale, window, softcap, out, stream)
  switch (head_dim) {
    case 16: KEEL_FLASH(16, 4, 64);
    case 32: KEEL_FLASH(32, 4, 64);
    case 64: KEEL_FLASH(64, 4, 64);
    case 96: KEEL_FLASH(96, 4, 64);
    case 128:
      if (rows_per_tile == 128) KEEL_FLASH(128, 8, 64);
      KEEL_FLASH(128, 4, 64);
    case 256: KEEL_FLASH(256, 4, 32);
  }
#undef KEEL_FLASH
  return cudaErrorInvalidValue;
}

}  // namespace keel::backend::cuda
