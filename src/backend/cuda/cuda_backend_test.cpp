// The CUDA backend against the CPU oracle: every op over many shapes, then the golden models end to end.
// Tolerances: F32 path 1e-4 relative (cuBLAS without TF32); BF16 activations and KV 3e-2 relative.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <future>
#include <numeric>
#include <optional>
#include <random>

#include "backend/cpu/cpu_backend.h"
#include "backend/cuda/cuda_backend.h"
#include "base/test_util.h"
#include "engine/engine.h"
#include "engine/model_runner.h"
#include "format/npy.h"
#include "model/model.h"

namespace keel::backend {

namespace {

const std::string kGolden = std::string(KEEL_SOURCE_DIR) + "/tests/golden/models/";

#define REQUIRE_GPU()                                                       \
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device visible"

std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

Tensor make(Backend& b, DType dtype, int64_t rows, int64_t cols, const std::vector<float>& data) {
  Tensor t = *b.alloc(dtype, rows, cols);
  b.copy_from_host(data.data(), t);
  return t;
}

std::vector<float> read(Backend& b, const Tensor& t) {
  std::vector<float> v(t.numel());
  b.copy_to_host(t, v.data());
  return v;
}

// Random values that bf16 holds exactly: both backends then multiply the same numbers.
std::vector<float> random_bf16_values(size_t n, uint32_t seed) {
  auto v = random_floats(n, seed);
  for (auto& x : v) x = bf16_to_float(float_to_bf16(x));
  return v;
}

// One of the CUDA backend's environment switches (read when a backend is made), restored at scope exit.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value != nullptr) setenv(name, value, 1);
    else unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_) setenv(name_, old_->c_str(), 1);
    else unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// The decode fusions and PDL (the defaults), then each turned off.
struct Switches {
  const char* fuse;
  const char* pdl;
};
const Switches kSwitchSettings[] = {{nullptr, nullptr}, {"0", nullptr}, {nullptr, "0"}};

struct AttnCase {
  int heads, kv_heads, head_dim, block_size, window;
  float softcap;
  std::vector<std::pair<int, int>> seqs;  // (kv_len, q_len)
};

// Writes the same random K/V into both backends' paged caches, then compares attention outputs.
double attention_error(const AttnCase& c, DType act) {
  auto cpu = make_cpu_backend();
  auto gpu = make_cuda_backend(0).value();
  gpu->set_weights_dtype(act);
  int q_tokens = 0;
  for (auto& [kv, q] : c.seqs) q_tokens += q;
  ForwardLimits limits;
  limits.max_tokens = std::max(512, q_tokens);
  limits.max_seqs = 64;
  limits.max_block_table_entries = 4096;
  limits.hidden = 64;
  limits.max_fused_cols = 64;
  EXPECT_TRUE(gpu->reserve_forward(limits).ok());  // enables split-K for the few-row cases
  int total_blocks = 0;
  for (auto& [kv, q] : c.seqs) total_blocks += (kv + c.block_size - 1) / c.block_size;
  KvLayout layout{1, total_blocks + 3, c.block_size, c.kv_heads, c.head_dim, DType::kF32};
  EXPECT_TRUE(cpu->alloc_kv(layout).ok());
  layout.dtype = act;
  EXPECT_TRUE(gpu->alloc_kv(layout).ok());

  // All of every sequence's tokens written first (as earlier steps would have), with blocks interleaved
  // backwards so that logical and physical order differ.
  BatchMeta write, run;
  int next_block = total_blocks + 2;
  for (auto& [kv, q] : c.seqs) {
    SeqSlice ws, rs;
    for (int b = 0; b < (kv + c.block_size - 1) / c.block_size; b++) ws.block_table.push_back(next_block--);
    rs.block_table = ws.block_table;
    ws.q_start = write.num_tokens();
    ws.q_len = ws.kv_len = kv;
    rs.q_start = run.num_tokens();
    rs.q_len = q;
    rs.kv_len = kv;
    for (int p = 0; p < kv; p++) {
      write.positions.push_back(p);
      write.slot_mapping.push_back(ws.block_table[p / c.block_size] * c.block_size + p % c.block_size);
    }
    for (int p = kv - q; p < kv; p++) {
      run.positions.push_back(p);
      run.slot_mapping.push_back(ws.block_table[p / c.block_size] * c.block_size + p % c.block_size);
    }
    write.seqs.push_back(ws);
    run.seqs.push_back(rs);
  }
  const int64_t width = static_cast<int64_t>(c.kv_heads) * c.head_dim;
  auto kd = random_floats(write.num_tokens() * width, 1), vd = random_floats(write.num_tokens() * width, 2);
  for (Backend* b : {static_cast<Backend*>(cpu.get()), gpu.get()}) {
    Tensor k = make(*b, DType::kF32, write.num_tokens(), width, kd), v = make(*b, DType::kF32, write.num_tokens(), width, vd);
    b->begin_forward(write, {}, {});
    b->write_kv(0, k, v, write);
  }
  AttentionParams p{c.heads, c.kv_heads, c.head_dim, 1.0f / std::sqrt(static_cast<float>(c.head_dim)), c.window,
                    c.softcap};
  auto qd = random_floats(run.num_tokens() * c.heads * c.head_dim, 3);
  std::vector<float> out[2];
  int i = 0;
  for (Backend* b : {static_cast<Backend*>(cpu.get()), gpu.get()}) {
    Tensor q = make(*b, DType::kF32, run.num_tokens(), c.heads * c.head_dim, qd);
    Tensor o = *b->alloc(b->act_dtype(), run.num_tokens(), c.heads * c.head_dim);
    b->begin_forward(run, {}, {});
    b->attention(0, q, run, p, o);
    out[i++] = read(*b, o);
  }
  return relative_error(out[1], out[0]);
}

}  // namespace

TEST(CudaOps, PagedAttentionMatchesCpuOverManyShapes) {
  REQUIRE_GPU();
  const std::vector<AttnCase> cases = {
      {4, 4, 16, 16, 0, 0, {{1, 1}}},                       // a single token
      {8, 2, 64, 16, 0, 0, {{17, 17}, {33, 1}, {5, 3}}},    // prefill, decode, partial chunk; GQA 4
      {8, 1, 128, 16, 0, 0, {{100, 1}, {64, 64}}},          // MQA, block boundary at 64
      {4, 2, 256, 1, 0, 0, {{9, 9}}},                       // head_dim 256, block size 1
      {8, 4, 64, 4, 5, 0, {{30, 30}, {12, 1}}},             // sliding window 5
      {4, 4, 32, 8, 0, 30.0f, {{20, 20}}},                  // soft-cap
      {16, 8, 128, 16, 16, 50.0f, {{70, 7}, {3, 3}, {48, 1}}},
      {32, 1, 64, 16, 0, 0, {{40, 2}}},                     // group 32: the per-warp fallback kernel
      {8, 8, 128, 16, 0, 0, {{300, 1}, {129, 129}}},        // several key tiles of 128
      {8, 2, 128, 16, 0, 0, {{700, 1}}},                    // one long decode row: split-K over 32 shares
      {8, 2, 128, 16, 0, 0, {{3, 1}, {40, 1}}},             // shares shorter than the splits (some empty)
      {8, 4, 64, 4, 9, 20.0f, {{61, 1}, {90, 2}}},          // split-K with a window and soft-cap
  };
  // Split-K shares joined by the last one to finish (the default), or by the combine kernel (KEEL_CUDA_FUSE=0).
  for (const char* fuse : {static_cast<const char*>(nullptr), "0"}) {
    ScopedEnv env("KEEL_CUDA_FUSE", fuse);
    for (size_t i = 0; i < cases.size(); i++) {
      const double f32 = attention_error(cases[i], DType::kF32);
      const double bf16 = attention_error(cases[i], DType::kBF16);
      EXPECT_LE(f32, 1e-5) << "case " << i << (fuse ? " unfused" : "");
      EXPECT_LE(bf16, 3e-2) << "case " << i << (fuse ? " unfused" : "");
    }
  }
}

// The residual stream's norms: add_rms_norm (x += delta, then the norm) and rms_norm, on decode-sized rows (a
// block per row holding it in registers: up to 64 rows of 2048..8192 columns, a multiple of 4, the last one
// partly filled) and past those limits (the looping kernels). x after the add: 1e-6; the norm in F32: 1e-5; in
// BF16 (stored rounded): 1e-2.
TEST(CudaOps, ResidualNormsMatchCpu) {
  REQUIRE_GPU();
  struct Shape {
    int rows, cols;
  };
  const Shape shapes[] = {{1, 4096}, {3, 2052}, {2, 5120}, {1, 8192}, {64, 2048}, {1, 8196}, {65, 4096}, {4, 1024}};
  for (const Switches& sw : kSwitchSettings) {
    ScopedEnv fuse("KEEL_CUDA_FUSE", sw.fuse), pdl("KEEL_CUDA_PDL", sw.pdl);
    for (DType act : {DType::kF32, DType::kBF16}) {
      auto cpu = make_cpu_backend();
      auto gpu = make_cuda_backend(0).value();
      gpu->set_weights_dtype(act);
      for (const Shape& sh : shapes) {
        for (bool add_one : {false, true}) {
          const auto xd = random_floats(static_cast<size_t>(sh.rows) * sh.cols, 61),
                     dd = random_floats(static_cast<size_t>(sh.rows) * sh.cols, 62), wd = random_floats(sh.cols, 63);
          std::vector<float> x_after[2], added[2], plain[2];
          int i = 0;
          for (Backend* b : {static_cast<Backend*>(cpu.get()), gpu.get()}) {
            Tensor x = make(*b, DType::kF32, sh.rows, sh.cols, xd), d = make(*b, DType::kF32, sh.rows, sh.cols, dd);
            Tensor w = *b->weight(DType::kF32, sh.cols, 1, wd.data());
            Tensor h = *b->alloc(b->act_dtype(), sh.rows, sh.cols), g = *b->alloc(b->act_dtype(), sh.rows, sh.cols);
            b->add_rms_norm(x, d, w, 1e-6f, add_one, h);
            x_after[i] = read(*b, x);
            added[i] = read(*b, h);
            b->rms_norm(x, w, 1e-6f, add_one, g);
            plain[i] = read(*b, g);
            i++;
          }
          const std::string where = std::to_string(sh.rows) + "x" + std::to_string(sh.cols) + " " + dtype_name(act) +
                                    (add_one ? " 1+w" : "") + (sw.pdl ? " without PDL" : "");
          const double tol = act == DType::kF32 ? 1e-5 : 1e-2;
          EXPECT_LE(relative_error(x_after[1], x_after[0]), 1e-6) << where;
          EXPECT_LE(relative_error(added[1], added[0]), tol) << where;
          EXPECT_LE(relative_error(plain[1], plain[0]), tol) << where;
        }
      }
    }
  }
}

// rope over q and k then the KV write, which the GPU runs as one kernel, against the CPU's three ops: q and k
// after rope (F32 on both: 1e-5), and the KV cache of layer 1 (F32: 1e-5; BF16: stored rounded, 1e-2). Every
// slot of the blocks is written, in a shuffled order.
TEST(CudaOps, RopeWriteKvMatchesCpu) {
  REQUIRE_GPU();
  struct Case {
    int heads, kv_heads, head_dim, rotary_dim, block_size, blocks;
  };
  const Case cases[] = {
      {32, 8, 128, 128, 1, 1},  // llama3-8b decode at batch 1
      {4, 2, 64, 64, 4, 2},     // 8 rows
      {8, 1, 128, 32, 1, 3},    // partial rotary (stablelm-like), MQA
      {6, 2, 256, 256, 2, 2},   // head_dim 256
      {40, 8, 96, 64, 16, 1},   // 16 rows, head_dim 96
  };
  for (const Switches& sw : kSwitchSettings) {
    ScopedEnv fuse("KEEL_CUDA_FUSE", sw.fuse), pdl("KEEL_CUDA_PDL", sw.pdl);
    for (DType act : {DType::kF32, DType::kBF16}) {
      for (size_t ci = 0; ci < std::size(cases); ci++) {
        const Case& c = cases[ci];
        const int rows = c.block_size * c.blocks;
        auto cpu = make_cpu_backend();
        auto gpu = make_cuda_backend(0).value();
        gpu->set_weights_dtype(act);
        KvLayout layout{2, c.blocks, c.block_size, c.kv_heads, c.head_dim, DType::kF32};
        ASSERT_TRUE(cpu->alloc_kv(layout).ok());
        layout.dtype = act;
        ASSERT_TRUE(gpu->alloc_kv(layout).ok());
        BatchMeta batch;
        std::vector<int32_t> slots(rows);
        std::iota(slots.begin(), slots.end(), 0);
        std::shuffle(slots.begin(), slots.end(), std::mt19937(static_cast<uint32_t>(ci)));
        for (int r = 0; r < rows; r++) batch.positions.push_back(1000 + 37 * r);
        batch.slot_mapping = slots;
        RopeTable table;
        for (int i = 0; i < c.rotary_dim / 2; i++)
          table.inv_freq.push_back(std::pow(10000.0f, -2.0f * static_cast<float>(i) / c.rotary_dim));
        table.attention_factor = 1.1f;
        const int64_t qw = static_cast<int64_t>(c.heads) * c.head_dim;
        const int64_t kw = static_cast<int64_t>(c.kv_heads) * c.head_dim;
        const auto qd = random_floats(rows * qw, 31), kd = random_floats(rows * kw, 32);
        const auto vd = random_floats(rows * kw, 33);
        std::vector<float> q_out[2], k_out[2], cache[2];
        int i = 0;
        for (Backend* b : {static_cast<Backend*>(cpu.get()), gpu.get()}) {
          Tensor q = make(*b, DType::kF32, rows, qw, qd), k = make(*b, DType::kF32, rows, kw, kd),
                 v = make(*b, DType::kF32, rows, kw, vd);
          b->begin_forward(batch, {}, {});
          b->rope_write_kv(1, q, k, v, c.head_dim, c.rotary_dim, batch, table);
          q_out[i] = read(*b, q);
          k_out[i] = read(*b, k);
          // Layer 1's K and V of every block, as float.
          const DType kv = b->kv_dtype();
          const size_t per = static_cast<size_t>(c.block_size) * kw;
          std::vector<uint8_t> raw(b->kv_layout().bytes_per_block_per_layer() * 2);
          std::vector<float> f(2 * per);
          for (int blk = 0; blk < c.blocks; blk++) {
            b->copy_kv_block_to_host(blk, raw.data());
            to_float(kv, raw.data() + 2 * per * dtype_size(kv), f.data(), 2 * per);
            cache[i].insert(cache[i].end(), f.begin(), f.end());
          }
          i++;
        }
        const std::string where = "case " + std::to_string(ci) + " " + dtype_name(act) + (sw.fuse ? " unfused" : "") +
                                  (sw.pdl ? " without PDL" : "");
        EXPECT_LE(relative_error(q_out[1], q_out[0]), 1e-5) << where;
        EXPECT_LE(relative_error(k_out[1], k_out[0]), 1e-5) << where;
        EXPECT_LE(relative_error(cache[1], cache[0]), act == DType::kF32 ? 1e-5 : 1e-2) << where;
      }
    }
  }
}

// q/k/v with biases (gemm_many of adjacent weights) and gate+up with the GLU (gemm_glu), bf16: decode-sized
// batches take the GEMV, which stores each column in its target (q, k, v) or act(gate)·up itself; five rows take
// cuBLAS and the split / GLU kernels. Against the CPU's separate GEMMs on the same bf16 values: the F32 outputs
// differ by summation order only (1e-5); the GLU output is stored in bf16 (1e-2).
TEST(CudaOps, FusedProjectionsMatchCpu) {
  REQUIRE_GPU();
  struct Shape {
    int k, q, kv, inter;
  };
  // K with a tail of words past the lanes (264 = 33 words), then llama-like proportions. Every weight is a
  // multiple of 256 bytes, so the GPU binds them back to back (adjacent, as a model's are).
  const Shape shapes[] = {{264, 32, 16, 48}, {1024, 512, 128, 1000}};
  for (const Switches& sw : kSwitchSettings) {
    ScopedEnv fuse("KEEL_CUDA_FUSE", sw.fuse), pdl("KEEL_CUDA_PDL", sw.pdl);
    for (const Shape& s : shapes) {
      const auto wq = random_bf16_values(static_cast<size_t>(s.q) * s.k, 41),
                 wk = random_bf16_values(static_cast<size_t>(s.kv) * s.k, 42),
                 wv = random_bf16_values(static_cast<size_t>(s.kv) * s.k, 43),
                 wg = random_bf16_values(static_cast<size_t>(s.inter) * s.k, 44),
                 wu = random_bf16_values(static_cast<size_t>(s.inter) * s.k, 45);
      const auto bq = random_bf16_values(s.q, 46), bk = random_bf16_values(s.kv, 47), bv = random_bf16_values(s.kv, 48);
      for (int m : {1, 2, 5}) {
        for (GluActivation act : {GluActivation::kSilu, GluActivation::kGeluTanh}) {
          const auto xd = random_bf16_values(static_cast<size_t>(m) * s.k, 49 + m);
          auto cpu = make_cpu_backend();
          auto gpu = make_cuda_backend(0).value();
          gpu->set_weights_dtype(DType::kBF16);
          ASSERT_TRUE(gpu->reserve_weights((wq.size() + 2 * wk.size() + 2 * wg.size()) * 2 + 16 * 1024).ok());
          ForwardLimits limits;
          limits.max_tokens = limits.max_seqs = 8;
          limits.max_block_table_entries = 8;
          limits.hidden = s.k;
          limits.max_fused_cols = std::max(s.q + 2 * s.kv, 2 * s.inter);
          ASSERT_TRUE(gpu->reserve_forward(limits).ok());
          std::vector<float> qkv[2], glu_out[2];
          int i = 0;
          for (Backend* b : {static_cast<Backend*>(cpu.get()), gpu.get()}) {
            Tensor q_w = *b->weight(DType::kF32, s.q, s.k, wq.data());
            Tensor k_w = *b->weight(DType::kF32, s.kv, s.k, wk.data());
            Tensor v_w = *b->weight(DType::kF32, s.kv, s.k, wv.data());
            Tensor g_w = *b->weight(DType::kF32, s.inter, s.k, wg.data());
            Tensor u_w = *b->weight(DType::kF32, s.inter, s.k, wu.data());
            Tensor q_b = *b->weight(DType::kF32, s.q, 1, bq.data()), k_b = *b->weight(DType::kF32, s.kv, 1, bk.data()),
                   v_b = *b->weight(DType::kF32, s.kv, 1, bv.data());
            if (b == gpu.get()) {
              ASSERT_EQ(k_w.data, static_cast<uint8_t*>(q_w.data) + q_w.nbytes());
              ASSERT_EQ(v_w.data, static_cast<uint8_t*>(k_w.data) + k_w.nbytes());
              ASSERT_EQ(u_w.data, static_cast<uint8_t*>(g_w.data) + g_w.nbytes());
            }
            Tensor x = make(*b, b->act_dtype(), m, s.k, xd);
            Tensor q = *b->alloc(DType::kF32, m, s.q), k = *b->alloc(DType::kF32, m, s.kv),
                   v = *b->alloc(DType::kF32, m, s.kv);
            const Backend::Projection p[3] = {{&q_w, &q_b, &q}, {&k_w, &k_b, &k}, {&v_w, &v_b, &v}};
            b->gemm_many(x, p, 3);
            qkv[i] = read(*b, q);
            for (const Tensor* t : {&k, &v}) {
              const auto r = read(*b, *t);
              qkv[i].insert(qkv[i].end(), r.begin(), r.end());
            }
            Tensor gate = *b->alloc(DType::kF32, m, s.inter), up = *b->alloc(DType::kF32, m, s.inter),
                   out = *b->alloc(b->act_dtype(), m, s.inter);
            b->gemm_glu(x, g_w, u_w, act, gate, up, out);
            glu_out[i] = read(*b, out);
            i++;
          }
          const std::string where = "k=" + std::to_string(s.k) + " m=" + std::to_string(m) +
                                    (act == GluActivation::kSilu ? " silu" : " gelu") + (sw.fuse ? " unfused" : "") +
                                    (sw.pdl ? " without PDL" : "");
          EXPECT_LE(relative_error(qkv[1], qkv[0]), 1e-5) << where;
          EXPECT_LE(relative_error(glu_out[1], glu_out[0]), 1e-2) << where;
        }
      }
    }
  }
}

// Batches with a multi-token sequence take the tiled flash kernel (head_dim % 16 == 0, group <= 8, 2-byte KV):
// several sequences, lengths off the 16/32-token tiles, block sizes that split tiles, GQA 1..8, windows,
// soft-cap, chunks over KV history, decode rows mixed in (those take the per-row kernels in the same call).
// F32 KV takes the per-row kernels (1e-5); BF16 and F16 KV (Q and P rounded to 16 bits inside the kernel) must
// stay within the file's 3e-2 (measured on an H100: bf16 2.6e-3..3.6e-3, f16 3.3e-4..4.5e-4).
TEST(CudaOps, FlashPrefillAttentionMatchesCpu) {
  REQUIRE_GPU();
  const std::vector<AttnCase> cases = {
      {8, 8, 128, 16, 0, 0, {{200, 200}, {77, 77}}},                 // MHA, two prompts
      {8, 4, 64, 16, 0, 0, {{150, 150}, {300, 45}, {20, 2}}},        // GQA 2, a chunk over 255 tokens of history
      {12, 4, 128, 7, 0, 0, {{129, 129}, {64, 63}}},                 // GQA 3 (21-token tiles), block size 7
      {64, 16, 128, 16, 0, 0, {{1100, 1056}}},                       // GQA 4, enough tiles for 128-row CTAs
      {16, 2, 128, 5, 19, 0, {{200, 120}, {64, 64}}},                // GQA 8, window 19, block size 5
      {10, 2, 128, 16, 0, 30.0f, {{81, 81}}},                        // GQA 5, soft-cap
      {8, 4, 256, 16, 32, 50.0f, {{150, 150}, {40, 20}}},            // head_dim 256, window and soft-cap
      {4, 2, 32, 4, 6, 0, {{33, 33}, {50, 1}, {9, 9}}},              // head_dim 32, a decode row in the batch
      {6, 6, 16, 1, 0, 0, {{40, 40}}},                               // head_dim 16, block size 1
      {7, 1, 96, 32, 0, 0, {{260, 33}, {70, 1}}},                   // MQA, head_dim 96, history; a decode row
                                                                      // (per-warp kernel beside the flash one)
      {8, 2, 64, 16, 0, 0, {{5, 3}, {17, 17}, {2, 2}, {1, 1}}},      // tiny sequences
  };
  for (size_t i = 0; i < cases.size(); i++) {
    const double f32 = attention_error(cases[i], DType::kF32);
    const double bf16 = attention_error(cases[i], DType::kBF16);
    const double f16 = attention_error(cases[i], DType::kF16);
    std::printf("[flash prefill] case %2zu: rel. error f32 %.2e, bf16 %.2e, f16 %.2e\n", i, f32, bf16, f16);
    EXPECT_LE(f32, 1e-5) << "case " << i;
    EXPECT_LE(bf16, 3e-2) << "case " << i;
    EXPECT_LE(f16, 3e-2) << "case " << i;
  }
}

TEST(CudaOps, RmsNormRopeGluGemmMatchCpu) {
  REQUIRE_GPU();
  for (DType act : {DType::kF32, DType::kBF16}) {
    auto cpu = make_cpu_backend();
    auto gpu = make_cuda_backend(0).value();
    gpu->set_weights_dtype(act);
    const double tol = act == DType::kF32 ? 1e-5 : 3e-2;
    const int rows = 7, cols = 96, out_cols = 40;
    auto xd = random_floats(rows * cols, 4), wd = random_floats(cols, 5), md = random_floats(out_cols * cols, 6);
    auto bd = random_floats(out_cols, 7);
    std::vector<float> norm[2], gemm_out[2], glu_out[2], rope_out[2];
    BatchMeta batch;
    for (int r = 0; r < rows; r++) batch.positions.push_back(r * 13 + 1);
    batch.slot_mapping.assign(rows, 0);
    RopeTable table{{1.0f, 0.1f, 0.01f, 0.001f}, 1.2f};
    int i = 0;
    for (Backend* b : {static_cast<Backend*>(cpu.get()), gpu.get()}) {
      Tensor x = make(*b, DType::kF32, rows, cols, xd);
      Tensor w = *b->weight(DType::kF32, cols, 1, wd.data());
      Tensor h = *b->alloc(b->act_dtype(), rows, cols);
      b->rms_norm(x, w, 1e-6f, true, h);
      norm[i] = read(*b, h);
      Tensor m = *b->weight(DType::kF32, out_cols, cols, md.data());
      Tensor bias = *b->weight(DType::kF32, out_cols, 1, bd.data());
      Tensor y = *b->alloc(DType::kF32, rows, out_cols);
      b->gemm(h, m, &bias, y);
      gemm_out[i] = read(*b, y);
      Tensor g = *b->alloc(b->act_dtype(), rows, out_cols);
      b->glu(y, y, GluActivation::kGeluTanh, g);
      glu_out[i] = read(*b, g);
      b->begin_forward(batch, {}, {});
      b->rope(x, 16, 8, batch, 0, table);
      rope_out[i] = read(*b, x);
      i++;
    }
    EXPECT_LE(relative_error(norm[1], norm[0]), tol);
    EXPECT_LE(relative_error(gemm_out[1], gemm_out[0]), tol);
    EXPECT_LE(relative_error(glu_out[1], glu_out[0]), tol);
    EXPECT_LE(relative_error(rope_out[1], rope_out[0]), 1e-5);  // rope runs in F32 on both
  }
}

class CudaGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(CudaGolden, LogitsAndGreedyTokensMatchTransformers) {
  REQUIRE_GPU();
  const std::string name = GetParam();
  auto golden = nlohmann::json::parse(*env::Env::posix()->read_file(kGolden + name + "/golden.json"));
  auto want = *format::read_npy(env::Env::posix(), kGolden + name + "/logits.npy");
  auto gpu = make_cuda_backend(0).value();
  model::LoadOptions o;
  o.max_batch_tokens = 64;
  o.kv_blocks = 8;
  auto m = model::Model::load(env::Env::posix(), kGolden + name, gpu.get(), o);
  ASSERT_TRUE(m.ok()) << m.status().message();
  auto tokens = golden["tokens"].get<std::vector<int32_t>>();
  auto logits = engine::all_logits(**m, tokens);
  ASSERT_TRUE(logits.ok());
  const bool f32 = gpu->act_dtype() == DType::kF32;
  const double err = relative_error(*logits, want.data);
  std::printf("[cuda golden] %-22s %s logits rel. error %.3g\n", name.c_str(), dtype_name(gpu->act_dtype()), err);
  EXPECT_LE(err, f32 ? 1e-4 : 3e-2);
  if (golden["greedy"].is_null() || !f32) return;  // bf16 activations may flip near-ties over 24 steps
  engine::Request r;
  r.prompt = tokens;
  r.max_tokens = 24;
  r.sampling.temperature = 0;
  r.ignore_eos = true;
  auto out = engine::Engine(m->get(), engine::EngineOptions{}).generate(r);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, golden["greedy"].get<std::vector<int32_t>>());
}

INSTANTIATE_TEST_SUITE_P(Families, CudaGolden,
                         ::testing::Values("llama3_v4", "llama_linear_v5", "llama_dynamic", "llama_sharded_f16",
                                           "mistral_bf16", "qwen2_tied", "qwen2_v4", "qwen3", "qwen3_yarn_v4",
                                           "qwen3_moe", "qwen3_moe_sparse2_v4", "gemma3", "gemma3_v4"));

TEST(CudaEngine, BatchedGreedyEqualsAloneAndAllocatesNothingAfterWarmup) {
  REQUIRE_GPU();
  auto gpu = make_cuda_backend(0).value();
  model::LoadOptions o;
  o.max_batch_tokens = 64;
  o.kv_blocks = 64;
  o.block_size = 4;
  auto m = model::Model::load(env::Env::posix(), kGolden + "qwen3_moe", gpu.get(), o);
  ASSERT_TRUE(m.ok());
  std::vector<std::vector<int32_t>> prompts = {{5, 6, 7, 8, 9, 10, 11}, {200}, {17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29}};
  std::vector<std::vector<int32_t>> alone;
  for (auto& p : prompts) {
    engine::Request r;
    r.prompt = p;
    r.max_tokens = 10;
    r.sampling.temperature = 0;
    r.ignore_eos = true;
    alone.push_back(*engine::Engine(m->get(), engine::EngineOptions{}).generate(r));
  }
  const uint64_t warm = gpu->allocations();
  engine::Engine engine(m->get(), engine::EngineOptions{});
  std::vector<std::vector<int32_t>> got(prompts.size());
  std::vector<std::promise<void>> done(prompts.size());
  for (size_t i = 0; i < prompts.size(); i++) {
    engine::Request r;
    r.prompt = prompts[i];
    r.max_tokens = 10;
    r.sampling.temperature = 0;
    r.ignore_eos = true;
    ASSERT_TRUE(engine.submit(r, [&, i](const engine::Event& e) {
      if (e.token >= 0) got[i].push_back(e.token);
      if (e.finish != engine::FinishReason::kNone) done[i].set_value();
    }).ok());
  }
  for (size_t i = 0; i < prompts.size(); i++) {
    done[i].get_future().wait();
    EXPECT_EQ(got[i], alone[i]) << i;
  }
  EXPECT_EQ(gpu->allocations(), warm) << "device allocations after warm-up";
}

}  // namespace keel::backend
