// nvcc -O3 -std=c++17 -gencode=arch=compute_90,code=sm_90 -lineinfo -o /tmp/flash_prefill_v1 dev/kernels/flash_prefill_v1.cu
//
// Flash-attention-2 prefill over a paged KV cache (issue 6), version 1: mma.sync m16n8k16 (bf16 in, f32
// accumulate), cp.async double-buffered K/V tiles gathered through the block table, online softmax in f32.
// One CTA = one tile of query rows of one sequence x one KV head; the group's query heads are packed into the
// M dimension (row m = token * group + head-in-group), so a K/V tile read from memory serves the whole group.
// Varlen batch (tile list built on the host, heaviest tiles first), causal, sliding window, soft-cap.
//
// Usage: flash_prefill_v1            correctness sweep (vs a float64 CPU reference) then the timings
// Prints, per config: rel. error / TFLOP/s (causal FLOPs: 4 * head_dim * heads * visible keys per row).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

// The per-row kernel this replaces for prefill (attention_group_kernel), timed on the same problems.
#include "../../src/backend/cuda/attention_kernels.cuh"
#include "harness.cuh"

using harness::from_bf16;
using harness::median_ms;
using harness::to_bf16;
// ----------------------------------------------------------------------------------------------------------
// Kernel (promoted to src/backend/cuda/flash_prefill.cuh).

struct SeqInfo {
  int32_t q_start, q_len, kv_len, table_offset;
};

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(dst)), "l"(src),
               "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::); }

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
__device__ __forceinline__ void mma_bf16(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}

// HD: head_dim; WARPS: 16 query rows each; BN: keys per K/V tile.
template <int HD, int WARPS, int BN>
__global__ void __launch_bounds__(WARPS * 32) flash_prefill_kernel(
    const float* __restrict__ q, const __nv_bfloat16* __restrict__ k_cache, const __nv_bfloat16* __restrict__ v_cache,
    const SeqInfo* __restrict__ seqs, const int32_t* __restrict__ block_tables, const int2* __restrict__ tiles,
    int heads, int kv_heads, int block_size, float scale, int window, float softcap, __nv_bfloat16* __restrict__ out) {
  constexpr int BM = 16 * WARPS, NT = WARPS * 32;
  constexpr int LD = HD + 8;  // +16 bytes a row: ldmatrix rows land in different banks
  constexpr int CH = HD / 8;  // 16-byte chunks a row
  constexpr float kLog2e = 1.4426950408889634f;
  extern __shared__ __align__(16) uint8_t smem_raw[];
  __nv_bfloat16* qs = reinterpret_cast<__nv_bfloat16*>(smem_raw);  // [BM][LD]
  __nv_bfloat16* ks = qs + BM * LD;                                // [2][BN][LD]
  __nv_bfloat16* vs = ks + 2 * BN * LD;                            // [2][BN][LD]

  const int kvh = blockIdx.x;
  const int2 tile = tiles[blockIdx.y];
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
  const int64_t q_row_stride = static_cast<int64_t>(heads) * HD;
  const int64_t head_off = static_cast<int64_t>(kvh) * group * HD;

  // Q, scaled, to bf16. Packed rows of one token are contiguous in q (heads kvh*group .. +group-1).
  for (int i = tid; i < BM * (HD / 4); i += NT) {
    const int m = i / (HD / 4), c = (i % (HD / 4)) * 4;
    float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
    if (m < rows)
      v = *reinterpret_cast<const float4*>(q + (seq.q_start + t0 + m / group) * q_row_stride + head_off +
                                           (m % group) * HD + c);
    uint2 packed = make_uint2(pack_bf16(v.x * scale, v.y * scale), pack_bf16(v.z * scale, v.w * scale));
    *reinterpret_cast<uint2*>(qs + m * LD + c) = packed;
  }

  auto load_kv = [&](int stage, int kt) {
    for (int i = tid; i < BN * CH; i += NT) {
      const int r = i / CH, c = (i % CH) * 8;
      const int j = kt + r;
      const bool valid = j <= p1;
      int64_t off = 0;
      if (valid) off = (static_cast<int64_t>(table[j / block_size]) * block_size + j % block_size) * kv_width + kvh * HD + c;
      cp_async16(ks + (stage * BN + r) * LD + c, k_cache + off, valid);  // invalid: 16 zero bytes
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
    __syncthreads();
    if (it + 1 < n_tiles) load_kv((it + 1) & 1, kt + BN);
    const __nv_bfloat16* kb = ks + (it & 1) * BN * LD;
    const __nv_bfloat16* vb = vs + (it & 1) * BN * LD;

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
        mma_bf16(s[2 * nn], a, b[0], b[1]);
        mma_bf16(s[2 * nn + 1], a, b[2], b[3]);
      }
    }

    // Soft-cap, mask, then scores in log2 units.
    const bool need_mask = kt + BN - 1 > first_pos || (window > 0 && kt <= p1 - window);
#pragma unroll
    for (int ni = 0; ni < BN / 8; ni++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        float v = s[ni][e];
        if (softcap > 0.f) v = softcap * tanhf(v / softcap);
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
      const float m_use = mx == -INFINITY ? 0.f : mx;
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

    // O += P V: P's accumulator layout is the A-operand layout of the next MMA.
#pragma unroll
    for (int kk = 0; kk < BN / 16; kk++) {
      uint32_t a[4];
      a[0] = pack_bf16(s[2 * kk][0], s[2 * kk][1]);
      a[1] = pack_bf16(s[2 * kk][2], s[2 * kk][3]);
      a[2] = pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]);
      a[3] = pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
      for (int dn = 0; dn < HD / 16; dn++) {
        uint32_t b[4];
        ldmatrix_x4_trans(b, vb + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + dn * 16 + (lane >> 4) * 8);
        mma_bf16(o[2 * dn], a, b[0], b[1]);
        mma_bf16(o[2 * dn + 1], a, b[2], b[3]);
      }
    }
  }

  // Normalise; stage the warp's 16 rows through its own Q rows (no other warp reads them) for 16-byte stores.
#pragma unroll
  for (int h = 0; h < 2; h++) {
    l_i[h] += __shfl_xor_sync(0xffffffffu, l_i[h], 1);
    l_i[h] += __shfl_xor_sync(0xffffffffu, l_i[h], 2);
    l_i[h] = 1.f / l_i[h];
  }
  __nv_bfloat16* os = qs + warp * 16 * LD;
#pragma unroll
  for (int di = 0; di < HD / 8; di++) {
    const int c = di * 8 + (lane & 3) * 2;
    *reinterpret_cast<uint32_t*>(os + (lane >> 2) * LD + c) = pack_bf16(o[di][0] * l_i[0], o[di][1] * l_i[0]);
    *reinterpret_cast<uint32_t*>(os + ((lane >> 2) + 8) * LD + c) = pack_bf16(o[di][2] * l_i[1], o[di][3] * l_i[1]);
  }
  __syncwarp();
  for (int i = lane; i < 16 * CH; i += 32) {
    const int r = i / CH, c = (i % CH) * 8;
    const int m = warp * 16 + r;
    if (m < rows)
      *reinterpret_cast<uint4*>(out + (seq.q_start + t0 + m / group) * q_row_stride + head_off + (m % group) * HD + c) =
          *reinterpret_cast<const uint4*>(os + r * LD + c);
  }
}

template <int HD, int WARPS, int BN>
size_t flash_smem_bytes() {
  return static_cast<size_t>(16 * WARPS + 4 * BN) * (HD + 8) * sizeof(__nv_bfloat16);
}

// Host: the tile list of a batch, heaviest (most keys) first so the long tiles do not start last.
std::vector<int2> make_tiles(const std::vector<SeqInfo>& seqs, int tokens_per_tile, int window) {
  struct T {
    int work, seq, t0;
  };
  std::vector<T> t;
  for (int s = 0; s < static_cast<int>(seqs.size()); s++) {
    const SeqInfo& q = seqs[s];
    for (int t0 = 0; t0 < q.q_len; t0 += tokens_per_tile) {
      const int first = q.kv_len - q.q_len + t0, last = first + std::min(tokens_per_tile, q.q_len - t0) - 1;
      const int lo = window > 0 ? std::max(0, first - window + 1) : 0;
      t.push_back({last - lo + 1, s, t0});
    }
  }
  std::stable_sort(t.begin(), t.end(), [](const T& a, const T& b) { return a.work > b.work; });
  std::vector<int2> out;
  for (auto& x : t) out.push_back(make_int2(x.seq, x.t0));
  return out;
}

// ----------------------------------------------------------------------------------------------------------
// Harness.

struct Case {
  const char* name;
  int heads, kv_heads, head_dim, block_size, window;
  float softcap;
  std::vector<std::pair<int, int>> seqs;  // (kv_len, q_len)
  int check_rows;                         // rows checked against the CPU (0: all)
};

struct Problem {
  std::vector<SeqInfo> seqs;
  std::vector<int32_t> tables;
  std::vector<uint16_t> k, v;  // bf16 cache
  std::vector<float> q;
  int tokens = 0;
  double flops = 0;
};

Problem build(const Case& c, uint32_t seed) {
  Problem p;
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  int blocks = 0;
  for (auto& [kv, ql] : c.seqs) blocks += (kv + c.block_size - 1) / c.block_size;
  std::vector<int32_t> perm(blocks + 5);
  for (int i = 0; i < (int)perm.size(); i++) perm[i] = i;
  std::shuffle(perm.begin(), perm.end(), rng);
  int next = 0;
  for (auto& [kv, ql] : c.seqs) {
    SeqInfo s{p.tokens, ql, kv, static_cast<int32_t>(p.tables.size())};
    for (int b = 0; b < (kv + c.block_size - 1) / c.block_size; b++) p.tables.push_back(perm[next++]);
    p.seqs.push_back(s);
    p.tokens += ql;
    for (int t = 0; t < ql; t++) {
      const int pos = kv - ql + t;
      const int lo = c.window > 0 ? std::max(0, pos - c.window + 1) : 0;
      p.flops += 4.0 * c.head_dim * c.heads * (pos - lo + 1);
    }
  }
  const size_t kvn = static_cast<size_t>(perm.size()) * c.block_size * c.kv_heads * c.head_dim;
  p.k.resize(kvn);
  p.v.resize(kvn);
  for (auto& x : p.k) x = to_bf16(nd(rng));
  for (auto& x : p.v) x = to_bf16(nd(rng));
  p.q.resize(static_cast<size_t>(p.tokens) * c.heads * c.head_dim);
  for (auto& x : p.q) x = nd(rng);
  return p;
}

// float64 reference of one (row, head): out[head_dim].
void reference(const Case& c, const Problem& p, int s, int t, int h, float scale, double* o) {
  const SeqInfo& q = p.seqs[s];
  const int group = c.heads / c.kv_heads, kvh = h / group;
  const int pos = q.kv_len - q.q_len + t;
  const int lo = c.window > 0 ? std::max(0, pos - c.window + 1) : 0;
  const float* qv = p.q.data() + (static_cast<size_t>(q.q_start + t) * c.heads + h) * c.head_dim;
  std::vector<double> sc(pos - lo + 1);
  double mx = -1e300;
  auto slot = [&](int j) {
    return (static_cast<int64_t>(p.tables[q.table_offset + j / c.block_size]) * c.block_size + j % c.block_size) *
               c.kv_heads * c.head_dim + kvh * c.head_dim;
  };
  for (int j = lo; j <= pos; j++) {
    double d = 0;
    for (int e = 0; e < c.head_dim; e++) d += static_cast<double>(qv[e]) * from_bf16(p.k[slot(j) + e]);
    d *= scale;
    if (c.softcap > 0) d = c.softcap * std::tanh(d / c.softcap);
    sc[j - lo] = d;
    mx = std::max(mx, d);
  }
  double sum = 0;
  for (auto& x : sc) sum += (x = std::exp(x - mx));
  for (int e = 0; e < c.head_dim; e++) o[e] = 0;
  for (int j = lo; j <= pos; j++)
    for (int e = 0; e < c.head_dim; e++) o[e] += sc[j - lo] / sum * from_bf16(p.v[slot(j) + e]);
}

template <int HD, int WARPS, int BN>
void run_case(const Case& c, bool timed) {
  Problem p = build(c, 1234 + c.heads * 7 + c.seqs.size());
  const int group = c.heads / c.kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  auto tiles = make_tiles(p.seqs, 16 * WARPS / group, c.window);
  SeqInfo* d_seqs;
  int32_t* d_tables;
  int2* d_tiles;
  __nv_bfloat16 *d_k, *d_v, *d_out;
  float* d_q;
  const size_t out_n = static_cast<size_t>(p.tokens) * c.heads * c.head_dim;
  CHECK(cudaMalloc(&d_seqs, p.seqs.size() * sizeof(SeqInfo)));
  CHECK(cudaMalloc(&d_tables, p.tables.size() * 4));
  CHECK(cudaMalloc(&d_tiles, tiles.size() * sizeof(int2)));
  CHECK(cudaMalloc(&d_k, p.k.size() * 2));
  CHECK(cudaMalloc(&d_v, p.v.size() * 2));
  CHECK(cudaMalloc(&d_q, p.q.size() * 4));
  CHECK(cudaMalloc(&d_out, out_n * 2));
  CHECK(cudaMemcpy(d_seqs, p.seqs.data(), p.seqs.size() * sizeof(SeqInfo), cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(d_tables, p.tables.data(), p.tables.size() * 4, cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(d_tiles, tiles.data(), tiles.size() * sizeof(int2), cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(d_k, p.k.data(), p.k.size() * 2, cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(d_v, p.v.data(), p.v.size() * 2, cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(d_q, p.q.data(), p.q.size() * 4, cudaMemcpyHostToDevice));
  CHECK(cudaMemset(d_out, 0xff, out_n * 2));  // poison: NaN in bf16

  auto kernel = flash_prefill_kernel<HD, WARPS, BN>;
  const size_t smem = flash_smem_bytes<HD, WARPS, BN>();
  CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  dim3 grid(c.kv_heads, static_cast<unsigned>(tiles.size()));
  auto launch = [&] {
    kernel<<<grid, WARPS * 32, smem>>>(d_q, d_k, d_v, d_seqs, d_tables, d_tiles, c.heads, c.kv_heads, c.block_size,
                                       scale, c.window, c.softcap, d_out);
  };
  launch();
  CHECK(cudaGetLastError());
  CHECK(cudaDeviceSynchronize());
  std::vector<uint16_t> got(out_n);
  CHECK(cudaMemcpy(got.data(), d_out, out_n * 2, cudaMemcpyDeviceToHost));

  // Check: all rows, or check_rows spread over the batch (always including each sequence's first and last).
  std::vector<std::pair<int, int>> rows;
  for (int s = 0; s < (int)p.seqs.size(); s++) {
    const int ql = p.seqs[s].q_len;
    if (c.check_rows == 0) {
      for (int t = 0; t < ql; t++) rows.push_back({s, t});
    } else {
      for (int i = 0; i < c.check_rows; i++) rows.push_back({s, static_cast<int>((int64_t)i * (ql - 1) / std::max(1, c.check_rows - 1))});
    }
  }
  harness::RelRms rel;
  std::vector<double> ref(c.head_dim);
  for (auto [s, t] : rows)
    for (int h = 0; h < c.heads; h++) {
      reference(c, p, s, t, h, scale, ref.data());
      const size_t base = (static_cast<size_t>(p.seqs[s].q_start + t) * c.heads + h) * c.head_dim;
      for (int e = 0; e < c.head_dim; e++) rel.add(from_bf16(got[base + e]), ref[e]);
    }
  // Every output element written (the poison gone)?
  for (auto x : got) rel.require_finite(from_bf16(x));
  const double err = rel.value();

  double tflops = 0, ms_med = 0;
  if (timed) {
    ms_med = median_ms(launch, 5, 20);
    CHECK(cudaGetLastError());
    tflops = p.flops / (ms_med * 1e-3) / 1e12;
    if (HD == 128 && WARPS == 4 && BN == 64) {  // the baseline, once per problem
      std::vector<int32_t> positions, row_seq;
      std::vector<keel::backend::cuda::SeqInfo> info;
      for (int s = 0; s < (int)p.seqs.size(); s++) {
        const SeqInfo& q = p.seqs[s];
        info.push_back({q.q_start, q.q_len, q.kv_len, q.table_offset});
        for (int t = 0; t < q.q_len; t++) positions.push_back(q.kv_len - q.q_len + t), row_seq.push_back(s);
      }
      int32_t *d_pos, *d_rs;
      keel::backend::cuda::SeqInfo* d_info;
      CHECK(cudaMalloc(&d_pos, positions.size() * 4));
      CHECK(cudaMalloc(&d_rs, row_seq.size() * 4));
      CHECK(cudaMalloc(&d_info, info.size() * sizeof(info[0])));
      CHECK(cudaMemcpy(d_pos, positions.data(), positions.size() * 4, cudaMemcpyHostToDevice));
      CHECK(cudaMemcpy(d_rs, row_seq.data(), row_seq.size() * 4, cudaMemcpyHostToDevice));
      CHECK(cudaMemcpy(d_info, info.data(), info.size() * sizeof(info[0]), cudaMemcpyHostToDevice));
      using namespace keel::backend::cuda;
      const size_t bsmem = (static_cast<size_t>(group) * HD + group * kTileKeys + kWarps * group * HD) * sizeof(float);
      auto base = attention_group_kernel<__nv_bfloat16, HD / 32>;
      CHECK(cudaFuncSetAttribute(base, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bsmem)));
      const float base_ms = median_ms(
          [&] {
            base<<<dim3(p.tokens, c.kv_heads, 1), kTileKeys, bsmem>>>(d_q, d_k, d_v, d_pos, d_rs, d_info, d_tables,
                                                                      c.heads, c.kv_heads, HD, c.block_size, scale,
                                                                      c.window, c.softcap, d_out, 1, nullptr, nullptr,
                                                                      nullptr, false);
          },
          2, 5);
      CHECK(cudaGetLastError());
      std::printf("%-34s per-row baseline (attention_group_kernel)  %8.3f ms  %6.1f TFLOP/s\n", c.name, base_ms,
                  p.flops / (base_ms * 1e-3) / 1e12);
      cudaFree(d_pos), cudaFree(d_rs), cudaFree(d_info);
    }
  }
  std::printf("%-34s hd%-3d warps%d bn%-3d  err %.2e %s", c.name, HD, WARPS, BN, err, err < 1e-2 ? "ok  " : "FAIL");
  if (timed) std::printf("  %8.3f ms  %6.1f TFLOP/s", ms_med, tflops);
  std::printf("\n");
  cudaFree(d_seqs), cudaFree(d_tables), cudaFree(d_tiles), cudaFree(d_k), cudaFree(d_v), cudaFree(d_q), cudaFree(d_out);
}

int main() {
  // Correctness: varlen, lengths off the tile, block boundaries, GQA 1..8, windows, soft-cap, prior history.
  const std::vector<Case> small = {
      {"one seq 100 tokens gqa4", 8, 2, 128, 16, 0, 0, {{100, 100}}, 0},
      {"varlen + history gqa4", 8, 2, 128, 16, 0, 0, {{17, 17}, {300, 77}, {5, 3}, {129, 64}}, 0},
      {"mha block 1", 4, 4, 128, 1, 0, 0, {{70, 70}, {33, 9}}, 0},
      {"gqa3 block 7", 6, 2, 128, 7, 0, 0, {{90, 50}, {45, 45}}, 0},
      {"gqa8 block 5 window 19", 16, 2, 128, 5, 19, 0, {{200, 120}, {64, 64}}, 0},
      {"gqa5 softcap 30", 10, 2, 128, 16, 0, 30.f, {{81, 81}}, 0},
      {"gqa2 window 64 softcap 50", 8, 4, 128, 16, 64, 50.f, {{500, 200}, {70, 7}}, 0},
      {"gqa7 history", 7, 1, 128, 32, 0, 0, {{260, 33}}, 0},
  };
  for (auto& c : small) run_case<128, 4, 64>(c, false);
  for (auto& c : small) run_case<128, 8, 64>(c, false);
  std::vector<Case> d64 = {{"hd64 varlen", 8, 2, 64, 16, 0, 0, {{150, 150}, {40, 20}}, 0},
                           {"hd64 window softcap", 8, 1, 64, 4, 10, 20.f, {{90, 90}}, 0}};
  for (auto& c : d64) run_case<64, 4, 64>(c, false);
  std::vector<Case> d256 = {{"hd256 varlen", 8, 4, 256, 16, 0, 0, {{150, 150}, {40, 20}}, 0},
                            {"hd256 gemma-like", 8, 4, 256, 16, 32, 50.f, {{100, 100}}, 0}};
  for (auto& c : d256) run_case<256, 4, 32>(c, false);

  // Timings: llama3-8b attention (32 heads, 8 KV heads, head_dim 128, block 16).
  std::printf("--- llama3-8b shape, one layer\n");
  const std::vector<Case> big = {
      {"prefill 512", 32, 8, 128, 16, 0, 0, {{512, 512}}, 8},
      {"prefill 2048", 32, 8, 128, 16, 0, 0, {{2048, 2048}}, 8},
      {"prefill 8192", 32, 8, 128, 16, 0, 0, {{8192, 8192}}, 4},
      {"chunk 2048 of 8192 (last)", 32, 8, 128, 16, 0, 0, {{8192, 2048}}, 4},
      {"4 x 2048 varlen", 32, 8, 128, 16, 0, 0, {{2048, 2048}, {1024, 1024}, {4096, 512}, {300, 300}}, 4},
  };
  for (auto& c : big) run_case<128, 4, 64>(c, true);
  for (auto& c : big) run_case<128, 8, 64>(c, true);
  for (auto& c : big) run_case<128, 4, 32>(c, true);
  return 0;
}
