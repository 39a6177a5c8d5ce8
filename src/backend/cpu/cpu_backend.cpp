#include "backend/cpu/cpu_backend.h"

#include <omp.h>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <numeric>

namespace keel::backend {

namespace {

const float* f32(const Tensor& t) { return static_cast<const float*>(t.data); }
float* f32(Tensor& t) { return static_cast<float*>(t.data); }

// Eight independent partial sums: vectorisable without -ffast-math, and order-stable run to run.
inline float dot(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) acc[j] += a[i + j] * b[i + j];
  float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; i < n; i++) s += a[i] * b[i];
  return s;
}

// Dot of float x with a bf16 row, converting in registers: decode (one input row) streams weights through
// this once, so it must not write a converted copy first.
inline float dot_bf16(const float* a, const uint16_t* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; j++) {
      const uint32_t u = static_cast<uint32_t>(b[i + j]) << 16;
      float f;
      std::memcpy(&f, &u, sizeof(f));
      acc[j] += a[i + j] * f;
    }
  }
  float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; i < n; i++) s += a[i] * bf16_to_float(b[i]);
  return s;
}

// Row `r` of a weight as float: a pointer into the weight itself for F32, else converted (or dequantized: the
// exact oracle computes in f32 on the dequantized row) into `buf`.
inline const float* row_as_float(const Tensor& w, int64_t r, float* buf) {
  if (w.quant != nullptr) {
    format::dequantize_row(*w.quant, w.quant_row0 + r, buf);
    return buf;
  }
  const uint8_t* base = static_cast<const uint8_t*>(w.data) + r * w.cols * dtype_size(w.dtype);
  if (w.dtype == DType::kF32) return reinterpret_cast<const float*>(base);
  to_float(w.dtype, base, buf, static_cast<size_t>(w.cols));
  return buf;
}

inline float gelu_tanh(float x) {
  const float k = 0.7978845608028654f;  // sqrt(2/pi)
  return 0.5f * x * (1.0f + std::tanh(k * (x + 0.044715f * x * x * x)));
}
inline float silu(float x) { return x / (1.0f + std::exp(-x)); }

// out[M,N] = x[M,K] * w[N,K]^T + bias: each thread takes a range of weight rows, converts each row once, and
// dots it with every input row, so the weights stream through memory once per call.
void gemm_f32(const float* x, int64_t m, const Tensor& w, const Tensor* bias, float* out) {
  const int64_t n = w.rows, k = w.cols;
#pragma omp parallel
  {
    std::vector<float> buf(w.dtype == DType::kF32 && w.quant == nullptr ? 0 : static_cast<size_t>(k));
    std::vector<float> bias_row(bias && bias->dtype != DType::kF32 ? static_cast<size_t>(n) : 0);
#pragma omp for schedule(static)
    for (int64_t j = 0; j < n; j++) {
      const float* wr = row_as_float(w, j, buf.data());
      float b = 0.0f;
      if (bias) {
        if (bias->dtype == DType::kF32) b = f32(*bias)[j];
        else to_float(bias->dtype, static_cast<const uint8_t*>(bias->data) + j * dtype_size(bias->dtype), &b, 1);
      }
      for (int64_t i = 0; i < m; i++) out[i * n + j] = dot(x + i * k, wr, k) + b;
    }
  }
}

// Few input rows (decode): convert weights in registers instead of through a buffer.
void gemv_bf16(const float* x, int64_t m, const Tensor& w, const Tensor* bias, float* out) {
  const int64_t n = w.rows, k = w.cols;
  const uint16_t* wd = static_cast<const uint16_t*>(w.data);
#pragma omp parallel for schedule(static)
  for (int64_t j = 0; j < n; j++) {
    float b = 0.0f;
    if (bias) to_float(bias->dtype, static_cast<const uint8_t*>(bias->data) + j * dtype_size(bias->dtype), &b, 1);
    for (int64_t i = 0; i < m; i++) out[i * n + j] = dot_bf16(x + i * k, wd + j * k, k) + b;
  }
}

}  // namespace

Result<Tensor> CpuBackend::weight(DType dtype, int64_t rows, int64_t cols, const void* host) {
  // The mapping outlives the backend's users (the model owns both), so a view is enough.
  return Tensor{const_cast<void*>(host), dtype, rows, cols};
}

Result<Tensor> CpuBackend::quant_weight(const format::QuantMatrix& m) {
  Tensor t{const_cast<uint8_t*>(m.data), m.kind == format::QuantKind::kMlxAffine ? DType::kU32 : DType::kU8, m.rows,
           m.cols};
  t.quant = &m;
  return t;
}

Result<Tensor> CpuBackend::alloc(DType dtype, int64_t rows, int64_t cols) {
  if (dtype != DType::kF32) return unsupported("cpu backend: activations are F32, asked for {}", dtype_name(dtype));
  size_t n = static_cast<size_t>(rows * cols);
  buffers_.emplace_back(new float[n]());
  bytes_allocated_ += n * sizeof(float);
  allocations_++;
  return Tensor{buffers_.back().get(), dtype, rows, cols};
}

Status CpuBackend::alloc_kv(const KvLayout& layout) {
  if (layout.dtype != DType::kF32) return unsupported("cpu backend: KV cache is F32, asked for {}", dtype_name(layout.dtype));
  kv_layout_ = layout;
  size_t per_layer = static_cast<size_t>(layout.num_blocks) * layout.block_size * layout.num_kv_heads * layout.head_dim;
  k_cache_.assign(layout.num_layers, std::vector<float>(per_layer, 0.0f));
  v_cache_.assign(layout.num_layers, std::vector<float>(per_layer, 0.0f));
  bytes_allocated_ += 2 * per_layer * layout.num_layers * sizeof(float);
  allocations_ += 2 * layout.num_layers;
  return Status();
}

Status CpuBackend::reserve_forward(const ForwardLimits& limits) {
  if (limits.num_experts > 0) {
    const size_t pairs = static_cast<size_t>(limits.max_tokens) * limits.experts_per_token;
    moe_x_.reserve(pairs * limits.hidden);
    moe_gate_.reserve(pairs * limits.moe_intermediate);
    moe_up_.reserve(pairs * limits.moe_intermediate);
    moe_y_.reserve(pairs * limits.hidden);
    allocations_ += 4;
  }
  return Status();
}

void CpuBackend::copy_to_host(const Tensor& src, float* dst) { to_float(src.dtype, src.data, dst, src.numel()); }

void CpuBackend::copy_from_host(const float* src, Tensor& dst) {
  std::memcpy(dst.data, src, static_cast<size_t>(dst.numel()) * sizeof(float));
}

void CpuBackend::copy_kv_block_to_host(int block, void* dst) {
  const size_t n = static_cast<size_t>(kv_layout_.block_size) * kv_layout_.num_kv_heads * kv_layout_.head_dim;
  auto* out = static_cast<float*>(dst);
  for (int layer = 0; layer < kv_layout_.num_layers; layer++) {
    std::memcpy(out, k_cache_[layer].data() + block * n, n * sizeof(float));
    std::memcpy(out + n, v_cache_[layer].data() + block * n, n * sizeof(float));
    out += 2 * n;
  }
}

void CpuBackend::copy_kv_block_from_host(const void* src, int block) {
  const size_t n = static_cast<size_t>(kv_layout_.block_size) * kv_layout_.num_kv_heads * kv_layout_.head_dim;
  const auto* in = static_cast<const float*>(src);
  for (int layer = 0; layer < kv_layout_.num_layers; layer++) {
    std::memcpy(k_cache_[layer].data() + block * n, in, n * sizeof(float));
    std::memcpy(v_cache_[layer].data() + block * n, in + n, n * sizeof(float));
    in += 2 * n;
  }
}

void CpuBackend::embed(const Tensor& table, const int32_t* tokens, int n, float scale, Tensor& out) {
  const int64_t d = table.cols;
  const size_t row_bytes = d * dtype_size(table.dtype);
  for (int i = 0; i < n; i++) {
    float* o = f32(out) + i * d;
    if (table.quant != nullptr) format::dequantize_row(*table.quant, table.quant_row0 + tokens[i], o);
    else to_float(table.dtype, static_cast<const uint8_t*>(table.data) + tokens[i] * row_bytes, o, d);
    if (scale != 1.0f)
      for (int64_t j = 0; j < d; j++) o[j] *= scale;
  }
}

void CpuBackend::rms_norm(const Tensor& x, const Tensor& w, float eps, bool add_one, Tensor& out) {
  const int64_t d = x.cols;
  std::vector<float> wf(d);
  to_float(w.dtype, w.data, wf.data(), d);
  if (add_one)
    for (auto& v : wf) v += 1.0f;
#pragma omp parallel for schedule(static) if (x.rows > 16)
  for (int64_t r = 0; r < x.rows; r++) {
    const float* xr = f32(x) + r * d;
    float* o = f32(out) + r * d;
    float ss = dot(xr, xr, d);
    float inv = 1.0f / std::sqrt(ss / static_cast<float>(d) + eps);
    for (int64_t j = 0; j < d; j++) o[j] = (xr[j] * inv) * wf[j];
  }
}

void CpuBackend::add(const Tensor& a, const Tensor& b, Tensor& out) {
  const int64_t n = a.numel();
  for (int64_t i = 0; i < n; i++) f32(out)[i] = f32(a)[i] + f32(b)[i];
}

void CpuBackend::gemm(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out) {
  assert(x.cols == w.cols && out.cols == w.rows && out.rows == x.rows);
  if (w.dtype == DType::kBF16 && w.quant == nullptr && x.rows <= 4) {
    gemv_bf16(f32(x), x.rows, w, bias, f32(out));
    return;
  }
  gemm_f32(f32(x), x.rows, w, bias, f32(out));
}

void CpuBackend::rope(Tensor& x, int head_dim, int rotary_dim, const BatchMeta& batch, int first_row,
                      const RopeTable& table) {
  const int32_t* positions = batch.positions.data() + first_row;
  const int half = rotary_dim / 2;
  const int64_t heads = x.cols / head_dim;
#pragma omp parallel for schedule(static) if (x.rows > 16)
  for (int64_t r = 0; r < x.rows; r++) {
    const float pos = static_cast<float>(positions[r]);
    std::vector<float> c(half), s(half);
    for (int i = 0; i < half; i++) {
      // float32 product then float32 cos/sin, as transformers computes them
      const float angle = pos * table.inv_freq[i];
      c[i] = std::cos(angle) * table.attention_factor;
      s[i] = std::sin(angle) * table.attention_factor;
    }
    for (int64_t h = 0; h < heads; h++) {
      float* v = f32(x) + r * x.cols + h * head_dim;
      for (int i = 0; i < half; i++) {
        const float x1 = v[i], x2 = v[i + half];
        v[i] = x1 * c[i] - x2 * s[i];
        v[i + half] = x2 * c[i] + x1 * s[i];
      }
    }
  }
}

void CpuBackend::write_kv(int layer, const Tensor& k, const Tensor& v, const BatchMeta& batch) {
  const int64_t width = static_cast<int64_t>(kv_layout_.num_kv_heads) * kv_layout_.head_dim;
  float* kc = k_cache_[layer].data();
  float* vc = v_cache_[layer].data();
  for (int t = 0; t < batch.num_tokens(); t++) {
    const int64_t slot = batch.slot_mapping[t];
    std::memcpy(kc + slot * width, f32(k) + t * width, width * sizeof(float));
    std::memcpy(vc + slot * width, f32(v) + t * width, width * sizeof(float));
  }
}

void CpuBackend::attention(int layer, const Tensor& q, const BatchMeta& batch, const AttentionParams& p,
                           Tensor& out) {
  const int bs = kv_layout_.block_size;
  const int64_t kv_width = static_cast<int64_t>(p.num_kv_heads) * p.head_dim;
  const int group = p.num_heads / p.num_kv_heads;
  const float* kc = k_cache_[layer].data();
  const float* vc = v_cache_[layer].data();
  for (const SeqSlice& seq : batch.seqs) {
    const int first_pos = seq.kv_len - seq.q_len;
#pragma omp parallel for collapse(2) schedule(dynamic, 4)
    for (int i = 0; i < seq.q_len; i++) {
      for (int h = 0; h < p.num_heads; h++) {
        const int pos = first_pos + i;
        const int lo = p.sliding_window > 0 ? std::max(0, pos - p.sliding_window + 1) : 0;
        const int kvh = h / group;
        const float* qv = f32(q) + static_cast<int64_t>(seq.q_start + i) * q.cols + h * p.head_dim;
        std::vector<float> scores(pos - lo + 1);
        float mx = -INFINITY;
        for (int j = lo; j <= pos; j++) {
          const int64_t slot = static_cast<int64_t>(seq.block_table[j / bs]) * bs + j % bs;
          float sc = dot(qv, kc + slot * kv_width + kvh * p.head_dim, p.head_dim) * p.scale;
          if (p.softcap > 0) sc = p.softcap * std::tanh(sc / p.softcap);
          scores[j - lo] = sc;
          mx = std::max(mx, sc);
        }
        float sum = 0.0f;
        for (float& sc : scores) {
          sc = std::exp(sc - mx);
          sum += sc;
        }
        float* o = f32(out) + static_cast<int64_t>(seq.q_start + i) * out.cols + h * p.head_dim;
        std::fill(o, o + p.head_dim, 0.0f);
        for (int j = lo; j <= pos; j++) {
          const int64_t slot = static_cast<int64_t>(seq.block_table[j / bs]) * bs + j % bs;
          const float* vv = vc + slot * kv_width + kvh * p.head_dim;
          const float wgt = scores[j - lo] / sum;
          for (int d = 0; d < p.head_dim; d++) o[d] += wgt * vv[d];
        }
      }
    }
  }
}

void CpuBackend::glu(const Tensor& gate, const Tensor& up, GluActivation act, Tensor& out) {
  const int64_t n = gate.numel();
  const float* g = f32(gate);
  const float* u = f32(up);
  float* o = f32(out);
  if (act == GluActivation::kSilu)
    for (int64_t i = 0; i < n; i++) o[i] = silu(g[i]) * u[i];
  else
    for (int64_t i = 0; i < n; i++) o[i] = gelu_tanh(g[i]) * u[i];
}

void CpuBackend::moe(const Tensor& x, const MoeWeights& w, Tensor& out) {
  const int64_t tokens = x.rows, hidden = x.cols;
  const int num_experts = static_cast<int>(w.experts.size());
  // Route: softmax over all experts in float, keep the top k, optionally renormalise.
  std::vector<float> logits(tokens * num_experts);
  gemm_f32(f32(x), tokens, w.router, nullptr, logits.data());
  std::vector<std::vector<std::pair<int64_t, float>>> assigned(num_experts);  // expert -> (token, weight)
  for (int64_t t = 0; t < tokens; t++) {
    float* l = logits.data() + t * num_experts;
    const float mx = *std::max_element(l, l + num_experts);
    float sum = 0;
    for (int e = 0; e < num_experts; e++) sum += (l[e] = std::exp(l[e] - mx));
    for (int e = 0; e < num_experts; e++) l[e] /= sum;
    std::vector<int> order(num_experts);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return l[a] > l[b]; });
    float top_sum = 0;
    for (int k = 0; k < w.top_k; k++) top_sum += l[order[k]];
    for (int k = 0; k < w.top_k; k++) {
      const float weight = w.norm_topk_prob ? l[order[k]] / top_sum : l[order[k]];
      assigned[order[k]].push_back({t, weight});
    }
  }
  std::fill(f32(out), f32(out) + tokens * hidden, 0.0f);
  // Run each expert once over the tokens routed to it.
  for (int e = 0; e < num_experts; e++) {
    const auto& list = assigned[e];
    const ExpertWeights& ex = w.experts[e];
    if (list.empty() || ex.gate.empty()) continue;  // empty: held by another rank (expert parallel)
    const int64_t n = static_cast<int64_t>(list.size()), inter = ex.gate.rows;
    moe_x_.resize(n * hidden);
    moe_gate_.resize(n * inter);
    moe_up_.resize(n * inter);
    moe_y_.resize(n * hidden);
    for (int64_t i = 0; i < n; i++)
      std::memcpy(moe_x_.data() + i * hidden, f32(x) + list[i].first * hidden, hidden * sizeof(float));
    gemm_f32(moe_x_.data(), n, ex.gate, nullptr, moe_gate_.data());
    gemm_f32(moe_x_.data(), n, ex.up, nullptr, moe_up_.data());
    for (int64_t i = 0; i < n * inter; i++)
      moe_gate_[i] = (w.activation == GluActivation::kSilu ? silu(moe_gate_[i]) : gelu_tanh(moe_gate_[i])) * moe_up_[i];
    gemm_f32(moe_gate_.data(), n, ex.down, nullptr, moe_y_.data());
    for (int64_t i = 0; i < n; i++) {
      float* o = f32(out) + list[i].first * hidden;
      const float* y = moe_y_.data() + i * hidden;
      for (int64_t d = 0; d < hidden; d++) o[d] += y[d] * list[i].second;
    }
  }
}

void CpuBackend::softcap(Tensor& x, float cap) {
  float* v = f32(x);
  for (int64_t i = 0; i < x.numel(); i++) v[i] = cap * std::tanh(v[i] / cap);
}

void CpuBackend::gather_rows(const Tensor& x, const std::vector<int32_t>& rows, Tensor& out) {
  for (size_t i = 0; i < rows.size(); i++)
    std::memcpy(f32(out) + i * x.cols, f32(x) + rows[i] * x.cols, x.cols * sizeof(float));
}

void CpuBackend::sample_rows(const Tensor& logits, const SampleParams* params, int rows, int32_t* out) {
  const float* x = f32(logits);
  const int64_t vocab = logits.cols;
#pragma omp parallel if (rows > 1)
  {
    sampling::SampleScratch scratch;
#pragma omp for schedule(dynamic)
    for (int r = 0; r < rows; r++) out[r] = sampling::sample_row(x + r * vocab, vocab, params[r], scratch);
  }
}

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace keel::backend
