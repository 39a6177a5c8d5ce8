#include "model/weights.h"

#include <algorithm>
#include <map>

namespace keel::model {

namespace {

class Binder {
 public:
  Binder(const format::WeightFiles* files, backend::Backend* backend, ModelWeights* out, uint64_t seed)
      : files_(files), backend_(backend), out_(out), rng_(seed) {}

  // Looks up `name`, checks it has `shape` (1-D when cols == 0), and makes it a backend tensor.
  Status bind(const std::string& name, int64_t rows, int64_t cols, const char* meaning, backend::Tensor* out) {
    if (files_ == nullptr) return synthesize(name, rows, cols == 0 ? 1 : cols, out);
    const format::TensorView* t = files_->find(name);
    if (t == nullptr) return not_found("tensor '{}' ({}) is missing from the checkpoint", name, meaning);
    std::vector<int64_t> want = cols == 0 ? std::vector<int64_t>{rows} : std::vector<int64_t>{rows, cols};
    if (t->shape != want) {
      std::string w = cols == 0 ? fmt::format("[{}]", rows) : fmt::format("[{}, {}]", rows, cols);
      return invalid_argument("{}: tensor '{}' has shape {}, expected {} ({})", t->file, name, t->shape_str(), w,
                              meaning);
    }
    return make(*t, rows, cols == 0 ? 1 : cols, out);
  }

  // A 2-D slice [row0, row0+rows) of expert `e` of a fused 3-D expert tensor [experts, R, C].
  Status bind_expert_slice(const std::string& name, int experts, int64_t full_rows, int64_t cols, int e,
                           int64_t row0, int64_t rows, const char* meaning, backend::Tensor* out) {
    if (files_ == nullptr) return synthesize(name, rows, cols, out);
    const format::TensorView* t = files_->find(name);
    if (t == nullptr) return not_found("tensor '{}' ({}) is missing from the checkpoint", name, meaning);
    std::vector<int64_t> want{experts, full_rows, cols};
    if (t->shape != want)
      return invalid_argument("{}: tensor '{}' has shape {}, expected [{}, {}, {}] ({})", t->file, name,
                              t->shape_str(), experts, full_rows, cols, meaning);
    format::TensorView slice = *t;
    slice.data += ((static_cast<int64_t>(e) * full_rows + row0) * cols) * dtype_size(t->dtype);
    slice.shape = {rows, cols};
    bool first = e == 0 && row0 == 0;
    return make(slice, rows, cols, out, first ? t->numel() : 0);
  }

  bool has(const std::string& name) const { return files_ != nullptr && files_->find(name) != nullptr; }
  uint64_t parameters() const { return parameters_; }
  uint64_t tensors() const { return tensors_; }
  uint64_t bytes() const { return bytes_; }
  DType dominant_dtype() const {
    DType best = DType::kF32;
    uint64_t most = 0;
    for (auto& [d, n] : bytes_by_dtype_)
      if (n > most) most = n, best = d;
    return best;
  }

 private:
  Status make(const format::TensorView& t, int64_t rows, int64_t cols, backend::Tensor* out,
              int64_t count_numel = -1) {
    tensors_++;
    auto r = backend_->weight(t.dtype, rows, cols, t.data);
    if (!r.ok()) return r.status().with_context(t.name);
    *out = *r;
    const int64_t n = count_numel < 0 ? t.numel() : count_numel;
    parameters_ += n;
    bytes_ += n * dtype_size(t.dtype);
    bytes_by_dtype_[t.dtype] += n * dtype_size(t.dtype);
    return Status();
  }

  // Uniform bf16 values with the spread of a trained model's weights (std ~0.02); norms near 1.
  Status synthesize(const std::string& name, int64_t rows, int64_t cols, backend::Tensor* out) {
    const int64_t n = rows * cols;
    if (backend_ == nullptr) {  // counting only
      parameters_ += n;
      tensors_++;
      return Status();
    }
    auto buf = std::make_unique<uint16_t[]>(n);
    const bool norm = cols == 1;
    const uint64_t base = rng_ += 0x9e3779b97f4a7c15ull;
    // Chunks with their own xorshift streams, so billions of parameters fill in parallel.
    const int64_t chunk = 1 << 16;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < (n + chunk - 1) / chunk; c++) {
      uint64_t s = (base ^ (static_cast<uint64_t>(c) * 0xbf58476d1ce4e5b9ull)) | 1;
      for (int64_t i = c * chunk; i < std::min(n, (c + 1) * chunk); i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        const float u = static_cast<float>(s >> 40) / static_cast<float>(1 << 24) - 0.5f;
        buf[i] = float_to_bf16(norm ? 1.0f + 0.1f * u : 0.07f * u);
      }
    }
    format::TensorView t;
    t.name = name;
    t.dtype = DType::kBF16;
    t.shape = {rows, cols};
    t.data = reinterpret_cast<const uint8_t*>(buf.get());
    out_->owned.push_back(std::move(buf));
    return make(t, rows, cols, out);
  }

  const format::WeightFiles* files_;
  backend::Backend* backend_;
  ModelWeights* out_;
  uint64_t rng_;
  uint64_t parameters_ = 0;
  uint64_t tensors_ = 0;
  uint64_t bytes_ = 0;
  std::map<DType, uint64_t> bytes_by_dtype_;
};

Status bind_all(const ModelConfig& c, Binder& b, ModelWeights& w) {
  const int64_t H = c.hidden_size, D = c.head_dim, Q = c.q_size(), KV = c.kv_size();
  KEEL_RETURN_IF_ERROR(b.bind("model.embed_tokens.weight", c.vocab_size, H, "vocab_size x hidden_size", &w.embed));
  KEEL_RETURN_IF_ERROR(b.bind("model.norm.weight", H, 0, "hidden_size", &w.final_norm));
  if (c.tie_word_embeddings) {
    w.lm_head = w.embed;
  } else {
    KEEL_RETURN_IF_ERROR(b.bind("lm_head.weight", c.vocab_size, H, "vocab_size x hidden_size", &w.lm_head));
  }
  const auto glu = c.activation == Activation::kSilu ? backend::GluActivation::kSilu
                                                     : backend::GluActivation::kGeluTanh;
  w.layers.resize(c.num_layers);
  for (int i = 0; i < c.num_layers; i++) {
    LayerWeights& L = w.layers[i];
    const std::string p = fmt::format("model.layers.{}.", i);
    KEEL_RETURN_IF_ERROR(b.bind(p + "input_layernorm.weight", H, 0, "hidden_size", &L.input_norm));
    KEEL_RETURN_IF_ERROR(b.bind(p + "post_attention_layernorm.weight", H, 0, "hidden_size", &L.post_attn_norm));
    if (c.sandwich_norms) {
      KEEL_RETURN_IF_ERROR(b.bind(p + "pre_feedforward_layernorm.weight", H, 0, "hidden_size", &L.pre_ffn_norm));
      KEEL_RETURN_IF_ERROR(b.bind(p + "post_feedforward_layernorm.weight", H, 0, "hidden_size", &L.post_ffn_norm));
    }
    const std::string a = p + "self_attn.";
    KEEL_RETURN_IF_ERROR(b.bind(a + "q_proj.weight", Q, H, "num_attention_heads*head_dim x hidden_size", &L.q));
    KEEL_RETURN_IF_ERROR(b.bind(a + "k_proj.weight", KV, H, "num_key_value_heads*head_dim x hidden_size", &L.k));
    KEEL_RETURN_IF_ERROR(b.bind(a + "v_proj.weight", KV, H, "num_key_value_heads*head_dim x hidden_size", &L.v));
    KEEL_RETURN_IF_ERROR(b.bind(a + "o_proj.weight", H, Q, "hidden_size x num_attention_heads*head_dim", &L.o));
    if (c.qkv_bias) {
      KEEL_RETURN_IF_ERROR(b.bind(a + "q_proj.bias", Q, 0, "num_attention_heads*head_dim", &L.q_bias));
      KEEL_RETURN_IF_ERROR(b.bind(a + "k_proj.bias", KV, 0, "num_key_value_heads*head_dim", &L.k_bias));
      KEEL_RETURN_IF_ERROR(b.bind(a + "v_proj.bias", KV, 0, "num_key_value_heads*head_dim", &L.v_bias));
    }
    if (c.o_bias) KEEL_RETURN_IF_ERROR(b.bind(a + "o_proj.bias", H, 0, "hidden_size", &L.o_bias));
    if (c.qk_norm) {
      KEEL_RETURN_IF_ERROR(b.bind(a + "q_norm.weight", D, 0, "head_dim", &L.q_norm));
      KEEL_RETURN_IF_ERROR(b.bind(a + "k_norm.weight", D, 0, "head_dim", &L.k_norm));
    }
    const std::string m = p + "mlp.";
    if (!c.layers[i].moe) {
      const int64_t I = c.intermediate_size;
      KEEL_RETURN_IF_ERROR(b.bind(m + "gate_proj.weight", I, H, "intermediate_size x hidden_size", &L.gate));
      KEEL_RETURN_IF_ERROR(b.bind(m + "up_proj.weight", I, H, "intermediate_size x hidden_size", &L.up));
      KEEL_RETURN_IF_ERROR(b.bind(m + "down_proj.weight", H, I, "hidden_size x intermediate_size", &L.down));
      if (c.mlp_bias) {
        KEEL_RETURN_IF_ERROR(b.bind(m + "gate_proj.bias", I, 0, "intermediate_size", &L.gate_bias));
        KEEL_RETURN_IF_ERROR(b.bind(m + "up_proj.bias", I, 0, "intermediate_size", &L.up_bias));
        KEEL_RETURN_IF_ERROR(b.bind(m + "down_proj.bias", H, 0, "hidden_size", &L.down_bias));
      }
      continue;
    }
    const int64_t I = c.moe_intermediate_size;
    const int E = c.num_experts;
    L.moe.top_k = c.num_experts_per_tok;
    L.moe.norm_topk_prob = c.norm_topk_prob;
    L.moe.activation = glu;
    KEEL_RETURN_IF_ERROR(b.bind(m + "gate.weight", E, H, "num_experts x hidden_size", &L.moe.router));
    L.moe.experts.resize(E);
    // Hub checkpoints store one tensor per expert; transformers 5 may also hold them fused.
    const bool fused = b.has(m + "experts.gate_up_proj") && !b.has(m + "experts.0.gate_proj.weight");
    for (int e = 0; e < E; e++) {
      backend::ExpertWeights& ex = L.moe.experts[e];
      if (fused) {
        const std::string gu = m + "experts.gate_up_proj", dn = m + "experts.down_proj";
        const char* what = "num_experts x 2*moe_intermediate_size x hidden_size";
        KEEL_RETURN_IF_ERROR(b.bind_expert_slice(gu, E, 2 * I, H, e, 0, I, what, &ex.gate));
        KEEL_RETURN_IF_ERROR(b.bind_expert_slice(gu, E, 2 * I, H, e, I, I, what, &ex.up));
        KEEL_RETURN_IF_ERROR(b.bind_expert_slice(dn, E, H, I, e, 0, H, "num_experts x hidden_size x moe_intermediate_size", &ex.down));
        continue;
      }
      const std::string x = fmt::format("{}experts.{}.", m, e);
      KEEL_RETURN_IF_ERROR(b.bind(x + "gate_proj.weight", I, H, "moe_intermediate_size x hidden_size", &ex.gate));
      KEEL_RETURN_IF_ERROR(b.bind(x + "up_proj.weight", I, H, "moe_intermediate_size x hidden_size", &ex.up));
      KEEL_RETURN_IF_ERROR(b.bind(x + "down_proj.weight", H, I, "hidden_size x moe_intermediate_size", &ex.down));
    }
  }
  w.parameter_count = b.parameters();
  w.bytes = b.bytes();
  w.dtype = b.dominant_dtype();
  return Status();
}

}  // namespace

Result<ModelWeights> bind_weights(const ModelConfig& config, const format::WeightFiles& files,
                                  backend::Backend* backend) {
  ModelWeights w;
  Binder b(&files, backend, &w, 0);
  KEEL_RETURN_IF_ERROR(bind_all(config, b, w));
  return w;
}

WeightCount count_weights(const ModelConfig& config) {
  ModelWeights w;
  Binder b(nullptr, nullptr, &w, 1);
  (void)bind_all(config, b, w);
  return WeightCount{b.parameters(), b.tensors()};
}

Result<ModelWeights> synthetic_weights(const ModelConfig& config, backend::Backend* backend, uint64_t seed) {
  ModelWeights w;
  Binder b(nullptr, backend, &w, seed | 1);
  KEEL_RETURN_IF_ERROR(bind_all(config, b, w));
  return w;
}

}  // namespace keel::model
