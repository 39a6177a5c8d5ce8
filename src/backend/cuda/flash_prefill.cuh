// Flash-attention-2 prefill over the paged KV cache. dev/kernels/flash_prefill_v1.cu is its first version;
// flash_prefill_v2.cu benchmarks this header itself against the variants it beat (notes and numbers in
// dev/kernels/flash_prefill.md).
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

#include "backend/cuda/seq_info.h"

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

// HD: head_dim; WARPS x MT x 16 packed query rows a CTA (MT m16 tiles a warp: each K/V fragment read from
// shared memory feeds MT MMAs); BN: keys per K/V tile; QR: Q's fragments held in registers (a fifth fewer
// ldmatrix, ~40 more registers). tiles[i] = (sequence, first token); CTA b handles tile b / kv_heads, KV head
// b % kv_heads. q_scale is the softmax scale, times log2(e) when there is no soft-cap.
// MT 1 without QR, up to 128 x 32 of head_dim x keys, fits 128 registers: asking for 16 warps an SM keeps the
// compiler there (left alone it took 130, which leaves room for 12).
template <typename T, int HD, int WARPS, int BN, int MT, bool QR>
__global__ void __launch_bounds__(WARPS * 32, MT == 1 && !QR && HD * BN <= 128 * 32 ? 16 / WARPS : 1) flash_prefill_kernel(
    const float* __restrict__ q, const T* __restrict__ k_cache, const T* __restrict__ v_cache,
    const SeqInfo* __restrict__ seqs, const int32_t* __restrict__ block_tables, const int2* __restrict__ tiles,
    int heads, int kv_heads, int block_size, float q_scale, int window, float softcap, T* __restrict__ out) {
  using namespace flash;
  constexpr int WM = 16 * MT, BM = WM * WARPS, NT = WARPS * 32;
  constexpr int LD = HD + 8;  // +16 bytes a row: the 8 rows of an ldmatrix land in different banks
  constexpr int CH = HD / 8;  // 16-byte chunks a row
  constexpr bool kQRegs = QR && MT == 1;
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
  const float inv_cap = softcap > 0.f ? 1.f / softcap : 0.f, cap_log2e = softcap * kLog2e;

  // Q, pre-scaled, to T. The packed rows of one token are contiguous in q (heads kvh*group .. +group-1).
  for (int i = tid; i < BM * (HD / 4); i += NT) {
    const int m = i / (HD / 4), c = (i % (HD / 4)) * 4;
    float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
    if (m < rows)
      v = *reinterpret_cast<const float4*>(q + (seq.q_start + t0 + m / group) * row_stride + head_off +
                                           (m % group) * HD + c);
    *reinterpret_cast<uint2*>(qs + m * LD + c) =
        make_uint2(pack2<T>(v.x * q_scale, v.y * q_scale), pack2<T>(v.z * q_scale, v.w * q_scale));
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

  uint32_t qf[kQRegs ? HD / 16 : 1][4];
  if constexpr (kQRegs) {
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < HD / 16; kk++)
      ldmatrix_x4(qf[kk], qs + (warp * 16 + (lane & 15)) * LD + kk * 16 + (lane >> 4) * 8);
  }

  // This thread's rows: lane/4 and lane/4 + 8 of each of the warp's m16 tiles; padding rows act as the last token.
  int pos[MT][2];
  float m_i[MT][2], l_i[MT][2];
  float o[MT][HD / 8][4];
#pragma unroll
  for (int mt = 0; mt < MT; mt++) {
#pragma unroll
    for (int h = 0; h < 2; h++) {
      const int m = warp * WM + mt * 16 + (lane >> 2) + 8 * h;
      pos[mt][h] = m < rows ? first_pos + m / group : p1;
      m_i[mt][h] = -INFINITY;
      l_i[mt][h] = 0.f;
    }
#pragma unroll
    for (int i = 0; i < HD / 8; i++) o[mt][i][0] = o[mt][i][1] = o[mt][i][2] = o[mt][i][3] = 0.f;
  }

  for (int it = 0; it < n_tiles; it++) {
    const int kt = lo + it * BN;
    cp_async_wait_all();
    __syncthreads();  // tile it is in; everyone is done with tile it-1, whose buffer the next load reuses
    if (it + 1 < n_tiles) load_kv((it + 1) & 1, kt + BN);
    const T* kb = ks + (it & 1) * BN * LD;
    const T* vb = vs + (it & 1) * BN * LD;

    float s[MT][BN / 8][4];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
      for (int i = 0; i < BN / 8; i++) s[mt][i][0] = s[mt][i][1] = s[mt][i][2] = s[mt][i][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < HD / 16; kk++) {
      uint32_t a[MT][4];
      if constexpr (kQRegs) {
#pragma unroll
        for (int e = 0; e < 4; e++) a[0][e] = qf[kk][e];
      } else {
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
          ldmatrix_x4(a[mt], qs + (warp * WM + mt * 16 + (lane & 15)) * LD + kk * 16 + (lane >> 4) * 8);
      }
#pragma unroll
      for (int nn = 0; nn < BN / 16; nn++) {
        uint32_t b[4];
        ldmatrix_x4(b, kb + (nn * 16 + (lane & 7) + (lane >> 4) * 8) * LD + kk * 16 + ((lane >> 3) & 1) * 8);
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
          mma16816<T>(s[mt][2 * nn], a[mt], b[0], b[1]);
          mma16816<T>(s[mt][2 * nn + 1], a[mt], b[2], b[3]);
        }
      }
    }

    // Soft-cap and mask; scores are in log2 units from here. Only tiles crossing the diagonal or the window's
    // edge need the mask.
    const bool need_mask = kt + BN - 1 > first_pos || (window > 0 && kt <= p1 - window);
    float alpha[MT][2];
    bool moved = false;
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
#pragma unroll
      for (int ni = 0; ni < BN / 8; ni++) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
          float v = s[mt][ni][e];
          // not tanh.approx: its ~5e-4 error times a cap of 50 would move logits by 0.02
          if (softcap > 0.f) v = cap_log2e * tanhf(v * inv_cap);
          if (need_mask) {
            const int j = kt + ni * 8 + (lane & 3) * 2 + (e & 1);
            const int p = pos[mt][e >> 1];
            if (j > p || (window > 0 && j <= p - window)) v = -INFINITY;
          }
          s[mt][ni][e] = v;
        }
      }
#pragma unroll
      for (int h = 0; h < 2; h++) {
        float mx = m_i[mt][h];
#pragma unroll
        for (int ni = 0; ni < BN / 8; ni++) mx = fmaxf(mx, fmaxf(s[mt][ni][2 * h], s[mt][ni][2 * h + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float m_use = mx == -INFINITY ? 0.f : mx;  // a row with nothing visible yet stays at zero
        alpha[mt][h] = mx == m_i[mt][h] ? 1.f : fast_exp2(m_i[mt][h] - m_use);
        moved |= mx != m_i[mt][h];
        m_i[mt][h] = mx;
        float sum = 0.f;
#pragma unroll
        for (int ni = 0; ni < BN / 8; ni++) {
          s[mt][ni][2 * h] = fast_exp2(s[mt][ni][2 * h] - m_use);
          s[mt][ni][2 * h + 1] = fast_exp2(s[mt][ni][2 * h + 1] - m_use);
          sum += s[mt][ni][2 * h] + s[mt][ni][2 * h + 1];
        }
        l_i[mt][h] = l_i[mt][h] * alpha[mt][h] + sum;  // this thread's share of the row; the quad's summed at the end
      }
    }
    // Rescale O only when some row of the warp has a new maximum: past the first tiles of a long row, rarely.
    if (__any_sync(0xffffffffu, moved)) {
#pragma unroll
      for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int di = 0; di < HD / 8; di++) {
          o[mt][di][0] *= alpha[mt][0];
          o[mt][di][1] *= alpha[mt][0];
          o[mt][di][2] *= alpha[mt][1];
          o[mt][di][3] *= alpha[mt][1];
        }
    }

    // O += P V: the score accumulators' layout is the A-operand layout of the next MMA.
#pragma unroll
    for (int kk = 0; kk < BN / 16; kk++) {
      uint32_t a[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; mt++) {
        a[mt][0] = pack2<T>(s[mt][2 * kk][0], s[mt][2 * kk][1]);
        a[mt][1] = pack2<T>(s[mt][2 * kk][2], s[mt][2 * kk][3]);
        a[mt][2] = pack2<T>(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
        a[mt][3] = pack2<T>(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
      }
#pragma unroll
      for (int dn = 0; dn < HD / 16; dn++) {
        uint32_t b[4];
        ldmatrix_x4_trans(b, vb + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + dn * 16 + (lane >> 4) * 8);
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
          mma16816<T>(o[mt][2 * dn], a[mt], b[0], b[1]);
          mma16816<T>(o[mt][2 * dn + 1], a[mt], b[2], b[3]);
        }
      }
    }
  }

  // Normalise; stage the warp's rows in its own Q rows (no other warp reads them) for 16-byte stores.
  T* os = qs + warp * WM * LD;
#pragma unroll
  for (int mt = 0; mt < MT; mt++) {
    float inv[2];
#pragma unroll
    for (int h = 0; h < 2; h++) {
      float l = l_i[mt][h];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      inv[h] = 1.f / l;
    }
#pragma unroll
    for (int di = 0; di < HD / 8; di++) {
      const int c = di * 8 + (lane & 3) * 2;
      const int r = mt * 16 + (lane >> 2);
      *reinterpret_cast<uint32_t*>(os + r * LD + c) = pack2<T>(o[mt][di][0] * inv[0], o[mt][di][1] * inv[0]);
      *reinterpret_cast<uint32_t*>(os + (r + 8) * LD + c) = pack2<T>(o[mt][di][2] * inv[1], o[mt][di][3] * inv[1]);
    }
  }
  __syncwarp();
  for (int i = lane; i < WM * CH; i += 32) {
    const int r = i / CH, c = (i % CH) * 8;
    const int m = warp * WM + r;
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

// One configuration a head_dim: WARPS x MT x 16 packed rows a CTA, BN keys a K/V tile. From
// dev/kernels/flash_prefill_v2.cu's sweep on an H100 (llama3-8b attention, one layer, TFLOP/s at 512 / 2048 /
// 8192 tokens): head_dim 128 at 8 warps x 32 keys 51 / 190 / 241, against 4 warps x 32 keys 49 / 171 / 214,
// 4 x 64 keys 55 / 134 / 171, 2 m-tiles a warp 44 / 173 / 227, Q in registers 55 / 130 / 160 (the per-row
// kernel: 7 / 9 / 9). 32-key tiles at 128 registers keep 16 warps on an SM.
template <int HD>
struct FlashConfig {
  static constexpr int kWarps = HD == 128 ? 8 : 4, kKeys = HD >= 128 ? 32 : 64, kMTiles = 1;
  static constexpr bool kQRegs = false;
  static constexpr int kRows = 16 * kWarps * kMTiles;
};

inline int flash_prefill_rows(int head_dim) {
  switch (head_dim) {
    case 128: return FlashConfig<128>::kRows;
    case 256: return FlashConfig<256>::kRows;
    default: return FlashConfig<64>::kRows;
  }
}

// The (sequence, first token) of every tile of the multi-token sequences (single-token ones, decodes, stay with
// the split-K kernel), heaviest (most keys) first, so the long tiles of a causal prompt do not start last.
inline void flash_prefill_tiles(const std::vector<SeqInfo>& seqs, int tokens_per_tile, std::vector<int2>* out) {
  struct Tile {
    int work, seq, t0;
  };
  std::vector<Tile> t;
  for (int s = 0; s < static_cast<int>(seqs.size()); s++) {
    const SeqInfo& q = seqs[s];
    if (q.q_len < 2) continue;
    for (int t0 = 0; t0 < q.q_len; t0 += tokens_per_tile)
      t.push_back({q.kv_len - q.q_len + std::min(t0 + tokens_per_tile, q.q_len), s, t0});
  }
  std::stable_sort(t.begin(), t.end(), [](const Tile& a, const Tile& b) { return a.work > b.work; });
  out->clear();
  for (const Tile& x : t) out->push_back(make_int2(x.seq, x.t0));
}

template <typename T, int HD, int WARPS, int BN, int MT, bool QR>
cudaError_t launch_flash_prefill_cfg(const float* q, const T* k, const T* v, const SeqInfo* seqs, const int32_t* tables,
                                     const int2* tiles, int num_tiles, int heads, int kv_heads, int block_size,
                                     float scale, int window, float softcap, T* out, cudaStream_t stream) {
  auto kernel = flash_prefill_kernel<T, HD, WARPS, BN, MT, QR>;
  const size_t smem = static_cast<size_t>(16 * WARPS * MT + 4 * BN) * (HD + 8) * sizeof(T);
  if (smem > 48 * 1024) {
    cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (e != cudaSuccess) return e;
  }
  const float q_scale = softcap > 0.0f ? scale : scale * 1.4426950408889634f;  // log2(e): exp2 in the kernel
  kernel<<<static_cast<unsigned>(num_tiles) * kv_heads, WARPS * 32, smem, stream>>>(
      q, k, v, seqs, tables, tiles, heads, kv_heads, block_size, q_scale, window, softcap, out);
  return cudaGetLastError();
}

// Tiles of flash_prefill_rows(head_dim) rows; head_dim one flash_prefill_supports accepts.
template <typename T>
cudaError_t launch_flash_prefill(const float* q, const T* k, const T* v, const SeqInfo* seqs, const int32_t* tables,
                                 const int2* tiles, int num_tiles, int heads, int kv_heads, int head_dim,
                                 int block_size, float scale, int window, float softcap, T* out, cudaStream_t stream) {
#define KEEL_FLASH(HD)                                                                                          \
  return launch_flash_prefill_cfg<T, HD, FlashConfig<HD>::kWarps, FlashConfig<HD>::kKeys,                       \
                                  FlashConfig<HD>::kMTiles, FlashConfig<HD>::kQRegs>(q, k, v, seqs, tables, tiles, num_tiles, heads,     \
                                                            kv_heads, block_size, scale, window, softcap, out, stream)
  switch (head_dim) {
    case 16: KEEL_FLASH(16);
    case 32: KEEL_FLASH(32);
    case 64: KEEL_FLASH(64);
    case 96: KEEL_FLASH(96);
    case 128: KEEL_FLASH(128);
    case 256: KEEL_FLASH(256);
  }
#undef KEEL_FLASH
  return cudaErrorInvalidValue;
}

}  // namespace keel::backend::cuda
