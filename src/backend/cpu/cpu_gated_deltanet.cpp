// The CPU oracle of hybrid models' Gated DeltaNet layers: the recurrent form of the gated delta rule, one token
// after another, exactly as transformers' torch_recurrent_gated_delta_rule computes a decode step; a prefill is
// the same recurrence over its tokens (transformers' chunked form is the same sum reordered). Value heads are
// independent over time, so each thread takes whole heads through the whole slice.
#include <omp.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "backend/cpu/cpu_backend.h"

namespace keel::backend {

namespace {

const float* f32(const Tensor& t) { return static_cast<const float*>(t.data); }
float* f32(Tensor& t) { return static_cast<float*>(t.data); }

std::vector<float> as_floats(const Tensor& t) {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  to_float(t.dtype, t.data, out.data(), out.size());
  return out;
}

inline float silu(float x) { return x / (1.0f + std::exp(-x)); }
inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }
// torch.nn.functional.softplus (beta 1, threshold 20).
inline float softplus(float x) { return x > 20.0f ? x : std::log1p(std::exp(x)); }

// x / sqrt(sum(x^2) + 1e-6): transformers' l2norm (flash-linear-attention's).
void l2norm(float* x, int n) {
  float ss = 0;
  for (int i = 0; i < n; i++) ss += x[i] * x[i];
  const float inv = 1.0f / std::sqrt(ss + 1e-6f);
  for (int i = 0; i < n; i++) x[i] *= inv;
}

}  // namespace

Status CpuBackend::alloc_recurrent_state(const RecurrentStateLayout& layout) {
  if (layout.num_layers < 0 || layout.num_slots <= 0 || layout.conv_floats < 0 || layout.ssm_floats <= 0)
    return invalid_argument("recurrent state: {} layers x {} slots of {} + {} floats", layout.num_layers,
                            layout.num_slots, layout.conv_floats, layout.ssm_floats);
  state_layout_ = layout;
  const size_t slots = static_cast<size_t>(layout.num_layers) * layout.num_slots;
  conv_state_.assign(slots * layout.conv_floats, 0.0f);
  ssm_state_.assign(slots * layout.ssm_floats, 0.0f);
  bytes_allocated_ += layout.total_bytes();
  allocations_ += 2;
  return Status();
}

Status CpuBackend::gated_delta_net(int layer, const Tensor& qkv, const Tensor& z, const Tensor& b, const Tensor& a,
                                   const GatedDeltaNetWeights& w, const GatedDeltaNetParams& p,
                                   const BatchMeta& batch, Tensor& out) {
  const int K = p.conv_kernel, dk = p.k_head_dim, dv = p.v_head_dim, nk = p.num_k_heads, nv = p.num_v_heads;
  const int key_dim = nk * dk, conv_dim = 2 * key_dim + nv * dv;
  const RecurrentStateLayout& L = state_layout_;
  if (layer < 0 || layer >= L.num_layers || L.conv_floats != static_cast<int64_t>(K - 1) * conv_dim ||
      L.ssm_floats != static_cast<int64_t>(nv) * dk * dv)
    return internal_error("gated_delta_net: layer {} does not match the recurrent-state pool", layer);
  if (qkv.cols != conv_dim || z.cols != nv * dv || b.cols != nv || a.cols != nv || out.cols != nv * dv ||
      w.conv.rows != conv_dim || w.conv.cols != K)
    return internal_error("gated_delta_net: tensor shapes do not match the layer");
  const std::vector<float> conv_w = as_floats(w.conv), A_log = as_floats(w.A_log), dt_bias = as_floats(w.dt_bias),
                           norm_w = as_floats(w.norm);
  const int ratio = nv / nk;
  const float q_scale = 1.0f / std::sqrt(static_cast<float>(dk));
  // The conv's output for the batch (q|k|v after silu): the heads then read it.
  std::vector<float> mixed(static_cast<size_t>(qkv.rows) * conv_dim);

  for (const SeqSlice& s : batch.seqs) {
    if (s.state_slot < 0 || s.state_slot >= L.num_slots)
      return internal_error("gated_delta_net: state slot {} outside the pool of {}", s.state_slot, L.num_slots);
    const size_t slot = static_cast<size_t>(layer) * L.num_slots + s.state_slot;
    float* hist = conv_state_.data() + slot * L.conv_floats;  // [K-1][conv_dim], oldest first
    float* state = ssm_state_.data() + slot * L.ssm_floats;   // [nv][dk][dv]
    if (s.kv_len == s.q_len) {  // the sequence starts here: nothing before it
      std::memset(hist, 0, L.conv_floats * sizeof(float));
      std::memset(state, 0, L.ssm_floats * sizeof(float));
    }
    // Causal depthwise conv: channel c of token t sees tokens t-K+1..t (the history before the slice).
#pragma omp parallel for schedule(static) if (conv_dim >= 256)
    for (int c = 0; c < conv_dim; c++) {
      std::vector<float> window(K);
      for (int j = 0; j < K - 1; j++) window[j] = hist[static_cast<size_t>(j) * conv_dim + c];
      for (int t = 0; t < s.q_len; t++) {
        const int row = s.q_start + t;
        window[K - 1] = f32(qkv)[static_cast<size_t>(row) * conv_dim + c];
        float acc = 0;
        for (int j = 0; j < K; j++) acc += conv_w[static_cast<size_t>(c) * K + j] * window[j];
        mixed[static_cast<size_t>(row) * conv_dim + c] = silu(acc);
        for (int j = 0; j + 1 < K; j++) window[j] = window[j + 1];
      }
      for (int j = 0; j < K - 1; j++) hist[static_cast<size_t>(j) * conv_dim + c] = window[j];
    }
    // q and k: L2 norm per key head, q scaled.
    for (int t = 0; t < s.q_len; t++) {
      float* row = mixed.data() + static_cast<size_t>(s.q_start + t) * conv_dim;
      for (int h = 0; h < nk; h++) {
        l2norm(row + h * dk, dk);
        l2norm(row + key_dim + h * dk, dk);
        for (int i = 0; i < dk; i++) row[h * dk + i] *= q_scale;
      }
    }
    // The gated delta rule, head by head: S = S * exp(g); S += k (beta (v - S^T k))^T; o = S^T q.
#pragma omp parallel for schedule(static)
    for (int h = 0; h < nv; h++) {
      float* S = state + static_cast<size_t>(h) * dk * dv;
      const int kh = h / ratio;
      std::vector<float> o(dv), delta(dv);
      for (int t = 0; t < s.q_len; t++) {
        const int row = s.q_start + t;
        const float* m = mixed.data() + static_cast<size_t>(row) * conv_dim;
        const float* q = m + kh * dk;
        const float* k = m + key_dim + kh * dk;
        const float* v = m + 2 * key_dim + h * dv;
        const float beta = sigmoid(f32(b)[static_cast<size_t>(row) * nv + h]);
        const float g = -std::exp(A_log[h]) * softplus(f32(a)[static_cast<size_t>(row) * nv + h] + dt_bias[h]);
        const float decay = std::exp(g);
        for (int i = 0; i < dk * dv; i++) S[i] *= decay;
        for (int j = 0; j < dv; j++) {
          float kv = 0;
          for (int i = 0; i < dk; i++) kv += S[i * dv + j] * k[i];
          delta[j] = (v[j] - kv) * beta;
        }
        for (int i = 0; i < dk; i++)
          for (int j = 0; j < dv; j++) S[i * dv + j] += k[i] * delta[j];
        for (int j = 0; j < dv; j++) {
          float acc = 0;
          for (int i = 0; i < dk; i++) acc += S[i * dv + j] * q[i];
          o[j] = acc;
        }
        // Gated RMSNorm: normalize, weight, then gate with silu(z).
        float ss = 0;
        for (int j = 0; j < dv; j++) ss += o[j] * o[j];
        const float inv = 1.0f / std::sqrt(ss / static_cast<float>(dv) + p.norm_eps);
        const float* zr = f32(z) + static_cast<size_t>(row) * nv * dv + h * dv;
        float* dst = f32(out) + static_cast<size_t>(row) * nv * dv + h * dv;
        for (int j = 0; j < dv; j++) dst[j] = norm_w[j] * (o[j] * inv) * silu(zr[j]);
      }
    }
  }
  return Status();
}

Status CpuBackend::sigmoid_mul(const Tensor& x, const Tensor& gate, Tensor& out) {
  if (gate.rows != x.rows || (gate.cols != x.cols && gate.cols != 1) || out.rows != x.rows || out.cols != x.cols)
    return internal_error("sigmoid_mul: x [{}, {}], gate [{}, {}], out [{}, {}]", x.rows, x.cols, gate.rows,
                          gate.cols, out.rows, out.cols);
  const int64_t n = x.cols;
#pragma omp parallel for schedule(static) if (x.rows > 16)
  for (int64_t r = 0; r < x.rows; r++)
    for (int64_t c = 0; c < n; c++) {
      const float g = f32(gate)[r * gate.cols + (gate.cols == 1 ? 0 : c)];
      f32(out)[r * n + c] = f32(x)[r * n + c] * sigmoid(g);
    }
  return Status();
}

}  // namespace keel::backend
