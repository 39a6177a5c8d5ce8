#include "model/weights.h"

#include <algorithm>
#include <cstring>
#include <map>

#include <spdlog/spdlog.h>

#include "model/hybrid_weights.h"

namespace keel::model {

namespace {

// The part of a [rows, cols] checkpoint tensor this rank holds (shard.h); the default is all of it.
struct Slice {
  int64_t row0 = 0, rows = -1;  // -1: every row
  int64_t col0 = 0, cols = -1;  // -1: every column
  int64_t zero_rows = 0;        // zero rows appended (the vocab-parallel embedding's row for other ranks' tokens)
  static Slice of_rows(int64_t row0, int64_t rows) { return Slice{row0, rows, 0, -1, 0}; }
  static Slice of_cols(int64_t col0, int64_t cols) { return Slice{0, -1, col0, cols, 0}; }
};

bool ends_with(const std::string& s, const char* suffix) {
  const size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

class Binder {
 public:
  Binder(const format::WeightFiles* files, backend::Backend* backend, ModelWeights* out, uint64_t seed,
         const Quantization* quantization = nullptr)
      : files_(files), backend_(backend), out_(out), rng_(seed), quantization_(quantization) {}

  // Looks up `name`, checks it has `shape` (1-D when cols == 0), and makes `slice` of it a backend tensor: a
  // row range is a view, a column range (not contiguous in row-major storage) or added zero rows a copy.
  Status bind(const std::string& name, int64_t rows, int64_t cols, const char* meaning, backend::Tensor* out,
              Slice slice = {}) {
    const int64_t full_cols = cols == 0 ? 1 : cols;
    const int64_t out_rows = (slice.rows < 0 ? rows : slice.rows) + slice.zero_rows;
    const int64_t out_cols = slice.cols < 0 ? full_cols : slice.cols;
    if (files_ == nullptr) return synthesize(name, out_rows, out_cols, out, slice.zero_rows);
    const format::TensorView* t = files_->find(name);
    if (t == nullptr) return not_found("tensor '{}' ({}) is missing from the checkpoint", name, meaning);
    if (cols > 0 && is_quantized(name, *t)) {
      if (slice.rows >= 0 || slice.cols >= 0 || slice.zero_rows > 0)
        return unsupported("tensor '{}': quantized weights with --tensor-parallel are not supported yet", name);
      KEEL_ASSIGN_OR_RETURN(format::QuantMatrix m, quant_matrix(name, *t, {rows, cols}, meaning));
      return make_quant(m, name, out);
    }
    std::vector<int64_t> want = cols == 0 ? std::vector<int64_t>{rows} : std::vector<int64_t>{rows, cols};
    if (t->shape != want) {
      std::string w = cols == 0 ? fmt::format("[{}]", rows) : fmt::format("[{}, {}]", rows, cols);
      return invalid_argument("{}: tensor '{}' has shape {}, expected {} ({})", t->file, name, t->shape_str(), w,
                              meaning);
    }
    if (slice.rows < 0 && slice.cols < 0 && slice.zero_rows == 0) return make(*t, rows, full_cols, out);
    const size_t elem = dtype_size(t->dtype);
    format::TensorView part = *t;
    part.data += slice.row0 * full_cols * elem;
    part.shape = {out_rows - slice.zero_rows, full_cols};
    if (slice.cols < 0 && slice.zero_rows == 0) return make(part, out_rows, full_cols, out);
    // Copied into memory the weights own; rows past the copied ones stay zero.
    const int64_t copied = out_rows - slice.zero_rows;
    auto buf = std::make_unique<uint16_t[]>((out_rows * out_cols * elem + 1) / 2);
    auto* dst = reinterpret_cast<uint8_t*>(buf.get());
    const int64_t col0 = slice.cols < 0 ? 0 : slice.col0;
    for (int64_t r = 0; r < copied; r++)
      std::memcpy(dst + r * out_cols * elem, part.data + (r * full_cols + col0) * elem, out_cols * elem);
    part.data = dst;
    part.shape = {out_rows, out_cols};
    out_->owned.push_back(std::move(buf));
    return make(part, out_rows, out_cols, out, copied * out_cols);
  }

  // A 2-D slice [row0, row0+rows) of expert `e` of a fused 3-D expert tensor [experts, R, C].
  Status bind_expert_slice(const std::string& name, int experts, int64_t full_rows, int64_t cols, int e,
                           int64_t row0, int64_t rows, const char* meaning, backend::Tensor* out) {
    if (files_ == nullptr) return synthesize(name, rows, cols, out);
    const format::TensorView* t = files_->find(name);
    if (t == nullptr) return not_found("tensor '{}' ({}) is missing from the checkpoint", name, meaning);
    if (is_quantized(name, *t)) {
      // The stacked experts as one [experts * full_rows, cols] matrix; each expert's part is a row range.
      KEEL_ASSIGN_OR_RETURN(format::QuantMatrix all, quant_matrix(name, *t, {experts, full_rows, cols}, meaning));
      all.rows = experts * full_rows;
      return make_quant(all.row_range(static_cast<int64_t>(e) * full_rows + row0, rows), name, out);
    }
    std::vector<int64_t> want{experts, full_rows, cols};
    if (t->shape != want)
      return invalid_argument("{}: tensor '{}' has shape {}, expected [{}, {}, {}] ({})", t->file, name,
                              t->shape_str(), experts, full_rows, cols, meaning);
    format::TensorView slice = *t;
    slice.data += ((static_cast<int64_t>(e) * full_rows + row0) * cols) * dtype_size(t->dtype);
    slice.shape = {rows, cols};
    // Counted slice by slice: the slices of all experts add up to the fused tensor.
    return make(slice, rows, cols, out);
  }

  // A tensor stored as `shape` viewed as [rows, cols] (the same elements).
  Status bind_viewed(const std::string& name, const std::vector<int64_t>& shape, int64_t rows, int64_t cols,
                     const char* meaning, backend::Tensor* out) {
    if (files_ == nullptr) return synthesize(name, rows, cols, out);
    const format::TensorView* t = files_->find(name);
    if (t == nullptr) return not_found("tensor '{}' ({}) is missing from the checkpoint", name, meaning);
    if (t->shape != shape || t->quant != format::QuantKind::kNone)
      return invalid_argument("{}: tensor '{}' has shape {}, expected {} elements as {} ({})", t->file, name,
                              t->shape_str(), rows * cols, meaning, dtype_name(t->dtype));
    return make(*t, rows, cols, out);
  }

  // Rows perm[0], perm[1], ... of a [rows, cols] tensor, copied in its dtype into memory the weights own.
  Status bind_permuted(const std::string& name, int64_t rows, int64_t cols, const std::vector<int64_t>& perm,
                       const char* meaning, backend::Tensor* out) {
    if (files_ == nullptr) return synthesize(name, rows, cols, out);
    const format::TensorView* t = files_->find(name);
    if (t == nullptr) return not_found("tensor '{}' ({}) is missing from the checkpoint", name, meaning);
    if (is_quantized(name, *t))
      return unsupported("tensor '{}': a quantized tensor whose rows keel reorders (per-head interleaved) is not "
                         "supported yet", name);
    if (t->shape != std::vector<int64_t>{rows, cols} || static_cast<int64_t>(perm.size()) != rows)
      return invalid_argument("{}: tensor '{}' has shape {}, expected [{}, {}] ({})", t->file, name, t->shape_str(),
                              rows, cols, meaning);
    const size_t row_bytes = cols * dtype_size(t->dtype);
    auto buf = std::make_unique<uint16_t[]>((rows * row_bytes + 1) / 2);
    auto* dst = reinterpret_cast<uint8_t*>(buf.get());
    for (int64_t r = 0; r < rows; r++) std::memcpy(dst + r * row_bytes, t->data + perm[r] * row_bytes, row_bytes);
    format::TensorView copy = *t;
    copy.data = dst;
    out_->owned.push_back(std::move(buf));
    return make(copy, rows, cols, out);
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
  // MLX: "X.weight" has "X.scales" beside it (or is packed U32); GGUF: the view is block-quantized.
  bool is_quantized(const std::string& name, const format::TensorView& t) const {
    if (t.quant != format::QuantKind::kNone || t.dtype == DType::kU32) return true;
    return ends_with(name, ".weight") && files_->find(name.substr(0, name.size() - 7) + ".scales") != nullptr;
  }

  // The packed matrix behind `name`, whose logical shape is `want` ([rows, cols] or [experts, rows, cols]);
  // every shape and dtype checked against the config's bits and group size.
  Result<format::QuantMatrix> quant_matrix(const std::string& name, const format::TensorView& t,
                                           const std::vector<int64_t>& want, const char* meaning) {
    auto shape_str = [](const std::vector<int64_t>& v) {
      std::string s = "[";
      for (size_t i = 0; i < v.size(); i++) s += (i ? ", " : "") + std::to_string(v[i]);
      return s + "]";
    };
    const int64_t cols = want.back();
    int64_t rows = 1;
    for (size_t i = 0; i + 1 < want.size(); i++) rows *= want[i];
    format::QuantMatrix m;
    m.rows = rows;
    m.cols = cols;
    m.data = t.data;
    if (t.quant != format::QuantKind::kNone) {  // GGUF blocks
      if (t.shape != want)
        return invalid_argument("{}: tensor '{}' has shape {}, expected {} ({})", t.file, name, t.shape_str(),
                                shape_str(want), meaning);
      m.kind = t.quant;
      m.group_size = format::ggml_block(t.quant).values;
      return m;
    }
    const std::string module = name.substr(0, name.size() - 7);
    if (quantization_ == nullptr || !quantization_->mlx)
      return invalid_argument("{}: tensor '{}' is MLX-quantized ({}.scales) but config.json has no quantization "
                              "entry giving bits and group_size", t.file, name, module);
    const std::optional<MlxQuantParams> p = quantization_->for_module(module);
    if (!p)
      return invalid_argument("{}: tensor '{}' is quantized but config.json's quantization marks '{}' false "
                              "(unquantized)", t.file, name, module);
    KEEL_RETURN_IF_ERROR(format::check_mlx_params(p->bits, p->group_size, "tensor '" + name + "'"));
    const format::TensorView* scales = files_->find(module + ".scales");
    const format::TensorView* biases = files_->find(module + ".biases");
    if (scales == nullptr || biases == nullptr)
      return not_found("tensor '{}' is packed (U32) but '{}.{}' is missing from the checkpoint", name, module,
                       scales == nullptr ? "scales" : "biases");
    if (cols % p->group_size != 0)
      return invalid_argument("tensor '{}': {} columns are not a multiple of group_size {}", name, cols,
                              p->group_size);
    std::vector<int64_t> packed = want, grouped = want;
    packed.back() = cols * p->bits / 32;
    grouped.back() = cols / p->group_size;
    if (t.dtype != DType::kU32 || t.shape != packed)
      return invalid_argument("{}: tensor '{}' is {} {}, expected U32 {} ({} at {} bits, packed 32/{} per word)",
                              t.file, name, dtype_name(t.dtype), t.shape_str(), shape_str(packed), meaning, p->bits,
                              p->bits);
    for (const format::TensorView* aux : {scales, biases}) {
      if (aux->dtype != DType::kBF16 && aux->dtype != DType::kF16 && aux->dtype != DType::kF32)
        return unsupported("{}: tensor '{}' is {} (MLX scales and biases: BF16, F16 or F32)", aux->file, aux->name,
                           dtype_name(aux->dtype));
      if (aux->shape != grouped || aux->dtype != scales->dtype)
        return invalid_argument("{}: tensor '{}' is {} {}, expected {} {} (one per group of {})", aux->file,
                                aux->name, dtype_name(aux->dtype), aux->shape_str(), dtype_name(scales->dtype),
                                shape_str(grouped), p->group_size);
    }
    m.kind = format::QuantKind::kMlxAffine;
    m.bits = p->bits;
    m.group_size = p->group_size;
    m.scales = scales->data;
    m.biases = biases->data;
    m.scale_dtype = scales->dtype;
    return m;
  }

  // A packed weight: kept packed where the backend reads it so, else dequantized once and handed over as F32
  // (the backend converts it to its compute dtype).
  Status make_quant(const format::QuantMatrix& m, const std::string& name, backend::Tensor* out) {
    tensors_++;
    parameters_ += m.rows * m.cols;
    bytes_ += m.bytes();
    const DType target = m.kind == format::QuantKind::kMlxAffine ? m.scale_dtype : DType::kF16;
    bytes_by_dtype_[target] += m.bytes();
    std::string what = format::quant_kind_name(m.kind);
    if (m.kind == format::QuantKind::kMlxAffine) what = fmt::format("mlx-affine {}-bit g{}", m.bits, m.group_size);
    out_->quant_use[what].tensors++;
    out_->quant_use[what].bytes += m.bytes();
    out_->quant.push_back(m);
    if (backend_->keeps_quantized()) {
      auto r = backend_->quant_weight(out_->quant.back());
      if (!r.ok()) return r.status().with_context(name);
      *out = *r;
      return Status();
    }
    std::vector<float> host(static_cast<size_t>(m.rows * m.cols));
    for (int64_t r = 0; r < m.rows; r++) format::dequantize_row(m, r, host.data() + r * m.cols);
    auto r = backend_->weight(DType::kF32, m.rows, m.cols, host.data());
    if (!r.ok()) return r.status().with_context(name);
    *out = *r;
    return Status();
  }

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
  Status synthesize(const std::string& name, int64_t rows, int64_t cols, backend::Tensor* out,
                    int64_t zero_rows = 0) {
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
    std::fill(buf.get() + (rows - zero_rows) * cols, buf.get() + n, uint16_t{0});
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
  const Quantization* quantization_;
  uint64_t parameters_ = 0;
  uint64_t tensors_ = 0;
  uint64_t bytes_ = 0;
  std::map<DType, uint64_t> bytes_by_dtype_;
};

// model/hybrid_weights.h's view of the binder.
class HybridBinder final : public TensorBinder {
 public:
  explicit HybridBinder(Binder& b) : b_(b) {}
  Status bind(const std::string& name, int64_t rows, int64_t cols, const char* meaning,
              backend::Tensor* out) override {
    return b_.bind(name, rows, cols, meaning, out);
  }
  Status bind_viewed(const std::string& name, const std::vector<int64_t>& shape, int64_t rows, int64_t cols,
                     const char* meaning, backend::Tensor* out) override {
    return b_.bind_viewed(name, shape, rows, cols, meaning, out);
  }
  Status bind_permuted(const std::string& name, int64_t rows, int64_t cols, const std::vector<int64_t>& perm,
                       const char* meaning, backend::Tensor* out) override {
    return b_.bind_permuted(name, rows, cols, perm, meaning, out);
  }
  Status bind_expert_slice(const std::string& name, int experts, int64_t full_rows, int64_t cols, int e,
                           int64_t row0, int64_t rows, const char* meaning, backend::Tensor* out) override {
    return b_.bind_expert_slice(name, experts, full_rows, cols, e, row0, rows, meaning, out);
  }
  bool has(const std::string& name) const override { return b_.has(name); }

 private:
  Binder& b_;
};

// `c` is the full model's config; `s` says which slice of each tensor this rank binds (all of it unsharded).
Status bind_all(const ModelConfig& c, const ShardLayout& s, Binder& b, ModelWeights& w) {
  const int64_t H = c.hidden_size, D = c.head_dim, Q = c.q_size(), KV = c.kv_size();
  const bool tp = s.spec.sharded();
  const bool rank0 = s.spec.rank == 0;
  // Vocab parallel: this rank's rows, and one zero row that other ranks' tokens are embedded as.
  const Slice vocab = tp ? Slice{s.vocab0, s.vocab, 0, -1, 1} : Slice{};
  const Slice q_rows = tp ? Slice::of_rows(s.q_head0 * D, s.q_heads * D) : Slice{};
  const Slice kv_rows = tp ? Slice::of_rows(s.kv_head0 * D, s.kv_heads * D) : Slice{};
  // Pipeline stages: the embedding on the first, the head on the last, which binds the embedding as well when
  // the head is tied to it.
  if (s.embed || (s.head && c.tie_word_embeddings))
    KEEL_RETURN_IF_ERROR(
        b.bind(c.weight_prefix + "embed_tokens.weight", c.vocab_size, H, "vocab_size x hidden_size", &w.embed, vocab));
  if (s.head) {
    KEEL_RETURN_IF_ERROR(b.bind(c.weight_prefix + "norm.weight", H, 0, "hidden_size", &w.final_norm));
    if (c.tie_word_embeddings) {
      w.lm_head = tp ? w.embed.row_slice(0, s.vocab) : w.embed;
    } else {
      KEEL_RETURN_IF_ERROR(b.bind("lm_head.weight", c.vocab_size, H, "vocab_size x hidden_size", &w.lm_head,
                                  tp ? Slice::of_rows(s.vocab0, s.vocab) : Slice{}));
    }
  }
  const auto glu = c.activation == Activation::kSilu ? backend::GluActivation::kSilu
                                                     : backend::GluActivation::kGeluTanh;
  // w.layers[j] is the stage's j-th layer, checkpoint layer s.layer0 + j.
  w.layers.resize(s.layers);
  for (int i = s.layer0; i < s.layer0 + s.layers; i++) {
    LayerWeights& L = w.layers[i - s.layer0];
    const std::string p = fmt::format("{}layers.{}.", c.weight_prefix, i);
    if (c.hybrid()) {
      HybridBinder hybrid(b);
      KEEL_RETURN_IF_ERROR(bind_hybrid_layer(c, i, p, hybrid, L));
      continue;
    }
    KEEL_RETURN_IF_ERROR(b.bind(p + "input_layernorm.weight", H, 0, "hidden_size", &L.input_norm));
    KEEL_RETURN_IF_ERROR(b.bind(p + "post_attention_layernorm.weight", H, 0, "hidden_size", &L.post_attn_norm));
    if (c.sandwich_norms) {
      KEEL_RETURN_IF_ERROR(b.bind(p + "pre_feedforward_layernorm.weight", H, 0, "hidden_size", &L.pre_ffn_norm));
      KEEL_RETURN_IF_ERROR(b.bind(p + "post_feedforward_layernorm.weight", H, 0, "hidden_size", &L.post_ffn_norm));
    }
    const std::string a = p + "self_attn.";
    KEEL_RETURN_IF_ERROR(
        b.bind(a + "q_proj.weight", Q, H, "num_attention_heads*head_dim x hidden_size", &L.q, q_rows));
    KEEL_RETURN_IF_ERROR(
        b.bind(a + "k_proj.weight", KV, H, "num_key_value_heads*head_dim x hidden_size", &L.k, kv_rows));
    KEEL_RETURN_IF_ERROR(
        b.bind(a + "v_proj.weight", KV, H, "num_key_value_heads*head_dim x hidden_size", &L.v, kv_rows));
    KEEL_RETURN_IF_ERROR(b.bind(a + "o_proj.weight", H, Q, "hidden_size x num_attention_heads*head_dim", &L.o,
                                tp ? Slice::of_cols(s.q_head0 * D, s.q_heads * D) : Slice{}));
    if (c.qkv_bias) {
      KEEL_RETURN_IF_ERROR(b.bind(a + "q_proj.bias", Q, 0, "num_attention_heads*head_dim", &L.q_bias, q_rows));
      KEEL_RETURN_IF_ERROR(b.bind(a + "k_proj.bias", KV, 0, "num_key_value_heads*head_dim", &L.k_bias, kv_rows));
      KEEL_RETURN_IF_ERROR(b.bind(a + "v_proj.bias", KV, 0, "num_key_value_heads*head_dim", &L.v_bias, kv_rows));
    }
    // Row-parallel outputs are summed over ranks: their bias is added once, by rank 0.
    if (c.o_bias && rank0) KEEL_RETURN_IF_ERROR(b.bind(a + "o_proj.bias", H, 0, "hidden_size", &L.o_bias));
    if (c.qk_norm) {
      KEEL_RETURN_IF_ERROR(b.bind(a + "q_norm.weight", D, 0, "head_dim", &L.q_norm));
      KEEL_RETURN_IF_ERROR(b.bind(a + "k_norm.weight", D, 0, "head_dim", &L.k_norm));
    }
    const std::string m = p + "mlp.";
    if (!c.layers[i].moe) {
      const int64_t I = c.intermediate_size;
      const Slice rows = tp ? Slice::of_rows(s.inter0, s.inter) : Slice{};
      KEEL_RETURN_IF_ERROR(b.bind(m + "gate_proj.weight", I, H, "intermediate_size x hidden_size", &L.gate, rows));
      KEEL_RETURN_IF_ERROR(b.bind(m + "up_proj.weight", I, H, "intermediate_size x hidden_size", &L.up, rows));
      KEEL_RETURN_IF_ERROR(b.bind(m + "down_proj.weight", H, I, "hidden_size x intermediate_size", &L.down,
                                  tp ? Slice::of_cols(s.inter0, s.inter) : Slice{}));
      if (c.mlp_bias) {
        KEEL_RETURN_IF_ERROR(b.bind(m + "gate_proj.bias", I, 0, "intermediate_size", &L.gate_bias, rows));
        KEEL_RETURN_IF_ERROR(b.bind(m + "up_proj.bias", I, 0, "intermediate_size", &L.up_bias, rows));
        if (rank0) KEEL_RETURN_IF_ERROR(b.bind(m + "down_proj.bias", H, 0, "hidden_size", &L.down_bias));
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
    // mlx-lm (and keel's GGUF names) stack each projection's experts: switch_mlp.{gate,up,down}_proj [E, ...].
    const bool stacked = b.has(m + "switch_mlp.gate_proj.weight");
    for (int e = 0; e < E; e++) {
      if (tp && !s.owns_expert(e)) continue;  // another rank's: left empty, skipped by the backend's moe()
      backend::ExpertWeights& ex = L.moe.experts[e];
      if (stacked) {
        const std::string sw = m + "switch_mlp.";
        const char* in = "num_experts x moe_intermediate_size x hidden_size";
        KEEL_RETURN_IF_ERROR(b.bind_expert_slice(sw + "gate_proj.weight", E, I, H, e, 0, I, in, &ex.gate));
        KEEL_RETURN_IF_ERROR(b.bind_expert_slice(sw + "up_proj.weight", E, I, H, e, 0, I, in, &ex.up));
        KEEL_RETURN_IF_ERROR(b.bind_expert_slice(sw + "down_proj.weight", E, H, I, e, 0, H,
                                                 "num_experts x hidden_size x moe_intermediate_size", &ex.down));
        continue;
      }
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
                                  backend::Backend* backend, ShardSpec shard) {
  ModelWeights w;
  KEEL_ASSIGN_OR_RETURN(ShardLayout layout, shard_layout(config, shard));
  Binder b(&files, backend, &w, 0, &config.quantization);
  KEEL_RETURN_IF_ERROR(bind_all(config, layout, b, w));
  // A multimodal checkpoint's vision tower: keel serves text only, so its tensors stay unread.
  if (config.weight_prefix != "model.") {
    size_t vision = 0;
    for (const auto& [name, view] : files.all()) vision += name.rfind("model.visual.", 0) == 0;
    if (vision > 0) spdlog::info("keel: {} vision tower tensors (model.visual.*) skipped: text input only", vision);
  }
  return w;
}

WeightCount count_weights(const ModelConfig& config, ShardSpec shard) {
  ModelWeights w;
  auto layout = shard_layout(config, shard);
  if (!layout.ok()) layout = shard_layout(config, ShardSpec{});
  Binder b(nullptr, nullptr, &w, 1);
  (void)bind_all(config, *layout, b, w);
  return WeightCount{b.parameters(), b.tensors()};
}

Result<ModelWeights> synthetic_weights(const ModelConfig& config, backend::Backend* backend, uint64_t seed,
                                       ShardSpec shard) {
  ModelWeights w;
  KEEL_ASSIGN_OR_RETURN(ShardLayout layout, shard_layout(config, shard));
  Binder b(nullptr, backend, &w, seed | 1);
  KEEL_RETURN_IF_ERROR(bind_all(config, layout, b, w));
  return w;
}

}  // namespace keel::model
