// The CPU backend's Gated DeltaNet layer (the recurrent form, token by token) against an independent
// implementation written here from transformers' torch_chunk_gated_delta_rule: the chunked (WY) form in double
// precision, with chunks shorter than the sequence so that state crosses chunk boundaries. Then the properties the
// engine relies on: a prefill cut into chunks equals the whole, sequences batched together equal each alone, and a
// slice starting at position 0 ignores whatever its slot held.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "backend/cpu/cpu_backend.h"

namespace keel::backend {
namespace {

struct Layer {
  GatedDeltaNetParams p;
  std::vector<float> conv, A_log, dt_bias, norm;  // [conv_dim, K], [nv], [nv], [dv]
  int conv_dim() const { return 2 * p.num_k_heads * p.k_head_dim + p.num_v_heads * p.v_head_dim; }
  int value_dim() const { return p.num_v_heads * p.v_head_dim; }
};

struct Inputs {
  int T = 0;
  std::vector<float> qkv, z, b, a;
};

Layer make_layer(std::mt19937& rng) {
  Layer l;
  l.p.num_k_heads = 2;
  l.p.num_v_heads = 4;  // two value heads per key head
  l.p.k_head_dim = 8;
  l.p.v_head_dim = 6;  // unlike k_head_dim: a transposed state cannot pass
  l.p.conv_kernel = 4;
  std::normal_distribution<float> n(0, 1);
  for (int i = 0; i < l.conv_dim() * l.p.conv_kernel; i++) l.conv.push_back(0.5f * n(rng));
  for (int h = 0; h < l.p.num_v_heads; h++) l.A_log.push_back(0.5f * n(rng)), l.dt_bias.push_back(0.3f * n(rng));
  for (int j = 0; j < l.p.v_head_dim; j++) l.norm.push_back(1.0f + 0.3f * n(rng));
  return l;
}

Inputs make_inputs(const Layer& l, int T, std::mt19937& rng) {
  std::normal_distribution<float> n(0, 1);
  Inputs in;
  in.T = T;
  for (int i = 0; i < T * l.conv_dim(); i++) in.qkv.push_back(n(rng));
  for (int i = 0; i < T * l.value_dim(); i++) in.z.push_back(n(rng));
  for (int i = 0; i < T * l.p.num_v_heads; i++) in.b.push_back(n(rng)), in.a.push_back(n(rng));
  return in;
}

// transformers' layer, written out: conv over the whole sequence with zero history, silu, l2norm, then per value
// head the chunked delta rule, then the gated RMSNorm.
std::vector<double> reference(const Layer& l, const Inputs& in, int chunk) {
  const int T = in.T, C = l.conv_dim(), K = l.p.conv_kernel, nk = l.p.num_k_heads, nv = l.p.num_v_heads;
  const int dk = l.p.k_head_dim, dv = l.p.v_head_dim, kd = nk * dk;
  std::vector<double> mixed(static_cast<size_t>(T) * C);
  for (int t = 0; t < T; t++)
    for (int c = 0; c < C; c++) {
      double acc = 0;
      for (int j = 0; j < K; j++) {
        const int src = t - (K - 1) + j;
        if (src >= 0) acc += double(l.conv[c * K + j]) * in.qkv[src * C + c];
      }
      mixed[t * C + c] = acc / (1 + std::exp(-acc));
    }
  auto l2 = [](double* x, int n) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    for (int i = 0; i < n; i++) x[i] /= std::sqrt(ss + 1e-6);
  };
  for (int t = 0; t < T; t++)
    for (int h = 0; h < nk; h++) {
      l2(&mixed[t * C + h * dk], dk);
      l2(&mixed[t * C + kd + h * dk], dk);
      for (int i = 0; i < dk; i++) mixed[t * C + h * dk + i] /= std::sqrt(double(dk));
    }
  std::vector<double> out(static_cast<size_t>(T) * nv * dv);
  for (int h = 0; h < nv; h++) {
    const int kh = h / (nv / nk);
    auto q = [&](int t, int i) { return mixed[t * C + kh * dk + i]; };
    auto k = [&](int t, int i) { return mixed[t * C + kd + kh * dk + i]; };
    auto v = [&](int t, int j) { return mixed[t * C + 2 * kd + h * dv + j]; };
    std::vector<double> beta(T), g(T);
    for (int t = 0; t < T; t++) {
      beta[t] = 1 / (1 + std::exp(-double(in.b[t * nv + h])));
      const double x = double(in.a[t * nv + h]) + l.dt_bias[h];
      g[t] = -std::exp(double(l.A_log[h])) * (x > 20 ? x : std::log1p(std::exp(x)));
    }
    std::vector<double> S(dk * dv, 0.0), o(static_cast<size_t>(T) * dv);
    for (int s = 0; s < T; s += chunk) {
      const int n = std::min(chunk, T - s);
      std::vector<double> gc(n);
      for (int i = 0; i < n; i++) gc[i] = (i ? gc[i - 1] : 0) + g[s + i];
      auto decay = [&](int i, int j) { return i >= j ? std::exp(gc[i] - gc[j]) : 0.0; };
      // A = -(k_beta k^T * decay) strictly below the diagonal, then the forward substitution, then + I.
      std::vector<double> A(n * n, 0.0);
      for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++) {
          double d = 0;
          for (int x = 0; x < dk; x++) d += k(s + i, x) * beta[s + i] * k(s + j, x);
          A[i * n + j] = -d * decay(i, j);
        }
      for (int i = 1; i < n; i++) {
        std::vector<double> row(A.begin() + i * n, A.begin() + i * n + i);
        for (int j = 0; j < i; j++) {
          double acc = row[j];
          for (int m = 0; m < i; m++) acc += row[m] * A[m * n + j];
          A[i * n + j] = acc;
        }
      }
      for (int i = 0; i < n; i++) A[i * n + i] += 1;
      std::vector<double> U(n * dv, 0.0), W(n * dk, 0.0);
      for (int i = 0; i < n; i++)
        for (int m = 0; m < n; m++) {
          for (int j = 0; j < dv; j++) U[i * dv + j] += A[i * n + m] * v(s + m, j) * beta[s + m];
          for (int x = 0; x < dk; x++) W[i * dk + x] += A[i * n + m] * k(s + m, x) * beta[s + m] * std::exp(gc[m]);
        }
      std::vector<double> vnew(n * dv);
      for (int i = 0; i < n; i++)
        for (int j = 0; j < dv; j++) {
          double vp = 0;
          for (int x = 0; x < dk; x++) vp += W[i * dk + x] * S[x * dv + j];
          vnew[i * dv + j] = U[i * dv + j] - vp;
        }
      for (int i = 0; i < n; i++)
        for (int j = 0; j < dv; j++) {
          double acc = 0;
          for (int x = 0; x < dk; x++) acc += q(s + i, x) * std::exp(gc[i]) * S[x * dv + j];
          for (int m = 0; m <= i; m++) {
            double qk = 0;
            for (int x = 0; x < dk; x++) qk += q(s + i, x) * k(s + m, x);
            acc += qk * decay(i, m) * vnew[m * dv + j];
          }
          o[(s + i) * dv + j] = acc;
        }
      const double last = gc[n - 1];
      for (int x = 0; x < dk; x++)
        for (int j = 0; j < dv; j++) {
          double acc = S[x * dv + j] * std::exp(last);
          for (int m = 0; m < n; m++) acc += k(s + m, x) * std::exp(last - gc[m]) * vnew[m * dv + j];
          S[x * dv + j] = acc;
        }
    }
    for (int t = 0; t < T; t++) {
      double ss = 0;
      for (int j = 0; j < dv; j++) ss += o[t * dv + j] * o[t * dv + j];
      const double inv = 1 / std::sqrt(ss / dv + l.p.norm_eps);
      for (int j = 0; j < dv; j++) {
        const double zz = in.z[t * nv * dv + h * dv + j];
        out[t * nv * dv + h * dv + j] = o[t * dv + j] * inv * l.norm[j] * (zz / (1 + std::exp(-zz)));
      }
    }
  }
  return out;
}

// Runs the backend's op over `slices` ({state slot, first row, rows, position of the first row}) of the inputs.
struct Slice {
  int slot, row0, rows, pos0;
};
std::vector<float> run(CpuBackend& B, const Layer& l, const Inputs& in, const std::vector<Slice>& slices) {
  auto tensor = [](const std::vector<float>& v, int64_t rows) {
    return Tensor{const_cast<float*>(v.data()), DType::kF32, rows, static_cast<int64_t>(v.size()) / rows};
  };
  int T = 0;
  for (auto& s : slices) T += s.rows;
  // Gather the slices' rows into one batch, in slice order.
  Inputs batch;
  batch.T = T;
  BatchMeta meta;
  for (auto& s : slices) {
    SeqSlice seq;
    seq.q_start = meta.num_tokens();
    seq.q_len = s.rows;
    seq.kv_len = s.pos0 + s.rows;
    seq.state_slot = s.slot;
    meta.seqs.push_back(seq);
    for (int r = s.row0; r < s.row0 + s.rows; r++) {
      meta.positions.push_back(s.pos0 + r - s.row0);
      auto take = [&](const std::vector<float>& from, std::vector<float>& to, int cols) {
        to.insert(to.end(), from.begin() + r * cols, from.begin() + (r + 1) * cols);
      };
      take(in.qkv, batch.qkv, l.conv_dim());
      take(in.z, batch.z, l.value_dim());
      take(in.b, batch.b, l.p.num_v_heads);
      take(in.a, batch.a, l.p.num_v_heads);
    }
  }
  GatedDeltaNetWeights w;
  w.conv = tensor(l.conv, l.conv_dim());
  w.A_log = tensor(l.A_log, l.p.num_v_heads);
  w.dt_bias = tensor(l.dt_bias, l.p.num_v_heads);
  w.norm = tensor(l.norm, l.p.v_head_dim);
  std::vector<float> out(static_cast<size_t>(T) * l.value_dim());
  Tensor o = tensor(out, T);
  Status s = B.gated_delta_net(0, tensor(batch.qkv, T), tensor(batch.z, T), tensor(batch.b, T), tensor(batch.a, T),
                               w, l.p, meta, o);
  EXPECT_TRUE(s.ok()) << s.message();
  return out;
}

std::unique_ptr<CpuBackend> backend_for(const Layer& l, int slots) {
  auto B = std::make_unique<CpuBackend>();
  RecurrentStateLayout layout{1, slots, static_cast<int64_t>(l.p.conv_kernel - 1) * l.conv_dim(),
                              static_cast<int64_t>(l.p.num_v_heads) * l.p.k_head_dim * l.p.v_head_dim};
  EXPECT_TRUE(B->alloc_recurrent_state(layout).ok());
  return B;
}

std::vector<float> rows(const std::vector<float>& v, int cols, int row0, int n) {
  return std::vector<float>(v.begin() + row0 * cols, v.begin() + (row0 + n) * cols);
}

TEST(GatedDeltaNet, RecurrentFormMatchesTheChunkedReference) {
  std::mt19937 rng(7);
  const Layer l = make_layer(rng);
  const Inputs in = make_inputs(l, 37, rng);
  auto B = backend_for(l, 1);
  const std::vector<float> got = run(*B, l, in, {{0, 0, 37, 0}});
  for (int chunk : {8, 64}) {  // several chunks, and transformers' one chunk of 64
    const std::vector<double> want = reference(l, in, chunk);
    double err = 0, norm = 0;
    for (size_t i = 0; i < want.size(); i++) err += (got[i] - want[i]) * (got[i] - want[i]), norm += want[i] * want[i];
    EXPECT_LT(std::sqrt(err / norm), 1e-5) << "chunk " << chunk;
    EXPECT_GT(norm, 1.0);  // the layer's output is not vanishing
  }
}

TEST(GatedDeltaNet, ChunkedPrefillAndDecodeEqualTheWholePrefill) {
  std::mt19937 rng(11);
  const Layer l = make_layer(rng);
  const Inputs in = make_inputs(l, 30, rng);
  auto whole = backend_for(l, 1);
  const std::vector<float> want = run(*whole, l, in, {{0, 0, 30, 0}});
  auto B = backend_for(l, 1);
  std::vector<float> got = run(*B, l, in, {{0, 0, 13, 0}});  // a first chunk of 13 (more than the conv's 3)
  auto part = run(*B, l, in, {{0, 13, 2, 13}});              // a chunk shorter than the conv's history
  got.insert(got.end(), part.begin(), part.end());
  for (int t = 15; t < 30; t++) {  // then decode steps, one token each
    part = run(*B, l, in, {{0, t, 1, t}});
    got.insert(got.end(), part.begin(), part.end());
  }
  EXPECT_EQ(got, want);  // the same float operations in the same order: bit for bit
}

TEST(GatedDeltaNet, BatchedSequencesEqualEachAlone) {
  std::mt19937 rng(13);
  const Layer l = make_layer(rng);
  const Inputs a = make_inputs(l, 20, rng), b = make_inputs(l, 20, rng);
  // One batch: a's first 12 tokens in slot 1 and b's first 9 in slot 0; then a decode of a beside b's next 11.
  Inputs both;
  for (const Inputs* in : {&a, &b}) {
    both.qkv.insert(both.qkv.end(), in->qkv.begin(), in->qkv.end());
    both.z.insert(both.z.end(), in->z.begin(), in->z.end());
    both.b.insert(both.b.end(), in->b.begin(), in->b.end());
    both.a.insert(both.a.end(), in->a.begin(), in->a.end());
  }
  both.T = 40;
  auto B = backend_for(l, 2);
  const std::vector<float> first = run(*B, l, both, {{1, 0, 12, 0}, {0, 20, 9, 0}});
  const std::vector<float> second = run(*B, l, both, {{1, 12, 1, 12}, {0, 29, 11, 9}});
  auto alone_a = backend_for(l, 1), alone_b = backend_for(l, 1);
  const std::vector<float> want_a = run(*alone_a, l, a, {{0, 0, 13, 0}}), want_b = run(*alone_b, l, b, {{0, 0, 20, 0}});
  const int vd = l.value_dim();
  EXPECT_EQ(rows(first, vd, 0, 12), rows(want_a, vd, 0, 12));
  EXPECT_EQ(rows(second, vd, 0, 1), rows(want_a, vd, 12, 1));
  EXPECT_EQ(rows(first, vd, 12, 9), rows(want_b, vd, 0, 9));
  EXPECT_EQ(rows(second, vd, 1, 11), rows(want_b, vd, 9, 11));
}

TEST(GatedDeltaNet, ASliceAtPositionZeroStartsFromAZeroState) {
  std::mt19937 rng(17);
  const Layer l = make_layer(rng);
  const Inputs first = make_inputs(l, 10, rng), second = make_inputs(l, 10, rng);
  auto B = backend_for(l, 1);
  run(*B, l, first, {{0, 0, 10, 0}});  // leaves the slot's state dirty, as a finished or preempted sequence does
  const std::vector<float> reused = run(*B, l, second, {{0, 0, 10, 0}});
  auto fresh = backend_for(l, 1);
  EXPECT_EQ(reused, run(*fresh, l, second, {{0, 0, 10, 0}}));
}

TEST(GatedDeltaNet, SigmoidMulBroadcastsOneColumn) {
  CpuBackend B;
  std::vector<float> x{1, 2, 3, 4, 5, 6}, g{0, 100}, out(6);
  Tensor xt{x.data(), DType::kF32, 2, 3}, gt{g.data(), DType::kF32, 2, 1}, ot{out.data(), DType::kF32, 2, 3};
  ASSERT_TRUE(B.sigmoid_mul(xt, gt, ot).ok());
  EXPECT_EQ(out, (std::vector<float>{0.5f, 1.0f, 1.5f, 4, 5, 6}));
}

}  // namespace
}  // namespace keel::backend
