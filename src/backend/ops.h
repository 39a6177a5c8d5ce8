// backend::Backend — the seam between model code and memory/kernels.
//
// Model code never touches raw memory: it asks a Backend for buffers once, at start, and then calls ops sized
// for fusion on a GPU. Every tensor is 2-D row-major [rows, cols]; a [tokens, heads*head_dim] activation is
// viewed as [tokens*heads, head_dim] where an op works per head. A forward pass consumes a flattened Batch
// (BatchMeta): the same structure for one prompt on the CPU and for hundreds of sequences on a GPU.
//
// The CPU backend is the oracle: plain, fp32 accumulation; every other backend is tested against it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/sampling.h"
#include "base/dtype.h"
#include "base/status.h"
#include "format/quant.h"

namespace keel::backend {

struct Tensor {
  void* data = nullptr;
  DType dtype = DType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  // A weight kept packed (Backend::quant_weight): its rows are quant's rows [quant_row0, quant_row0 + rows), and
  // `data` points at quant's codes. Null for every plain tensor.
  const format::QuantMatrix* quant = nullptr;
  int64_t quant_row0 = 0;

  bool empty() const { return data == nullptr; }
  int64_t numel() const { return rows * cols; }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  // Rows [start, start+n) of this tensor.
  Tensor row_slice(int64_t start, int64_t n) const {
    if (quant != nullptr) {
      Tensor t = *this;
      t.rows = n;
      t.quant_row0 += start;
      return t;
    }
    return Tensor{static_cast<uint8_t*>(data) + start * cols * dtype_size(dtype), dtype, n, cols};
  }
  // The same bytes as [numel/cols_, cols_].
  Tensor reshaped(int64_t new_cols) const { return Tensor{data, dtype, numel() / new_cols, new_cols}; }
};

// Paged KV storage: for each layer, K and V of shape [num_blocks, block_size, num_kv_heads, head_dim].
struct KvLayout {
  int num_layers = 0;
  int num_blocks = 0;
  int block_size = 16;
  int num_kv_heads = 0;
  int head_dim = 0;
  DType dtype = DType::kF32;

  size_t bytes_per_block_per_layer() const {
    return static_cast<size_t>(block_size) * num_kv_heads * head_dim * dtype_size(dtype) * 2;
  }
  size_t total_bytes() const { return bytes_per_block_per_layer() * num_layers * num_blocks; }
};

// One sequence's part of a flattened batch. Its query rows are [q_start, q_start + q_len); after this step its
// KV holds kv_len tokens at positions 0..kv_len-1, the queries being the last q_len of them.
struct SeqSlice {
  int32_t q_start = 0;
  int32_t q_len = 0;
  int32_t kv_len = 0;
  std::vector<int32_t> block_table;  // physical block of each logical block
  // Hybrid models: the sequence's slot in the recurrent-state pool (RecurrentStateLayout). A slice whose first
  // position is 0 (kv_len == q_len) starts from a zero state; any other continues the slot's state.
  int32_t state_slot = -1;
};

struct BatchMeta {
  std::vector<int32_t> positions;     // [tokens]
  std::vector<int32_t> slot_mapping;  // [tokens] physical KV slot = block * block_size + offset
  std::vector<SeqSlice> seqs;
  int num_tokens() const { return static_cast<int>(positions.size()); }
};

// Rotary embedding for one call: angle_i = position * inv_freq[i] over the first rotary_dim dims of each head
// (rotate-half convention), cos/sin multiplied by attention_factor (yarn).
struct RopeTable {
  std::vector<float> inv_freq;  // [rotary_dim / 2]
  float attention_factor = 1.0f;
  int id = -1;  // >= 0: the same table every forward (a GPU keeps it resident); -1: computed for this call
};

// The largest forward pass the model will run: a backend sizes its per-forward scratch (batch metadata, MoE
// routing buffers) from this at start, so nothing is allocated after warm-up.
struct ForwardLimits {
  int max_tokens = 0;
  int max_seqs = 0;
  int64_t max_block_table_entries = 0;  // summed over the sequences of one batch
  int hidden = 0;
  int max_fused_cols = 0;  // widest gemm_many / gemm_glu output (q+k+v, or gate+up)
  int num_experts = 0;  // 0: no MoE
  int experts_per_token = 0;
  int moe_intermediate = 0;
};

struct AttentionParams {
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  float scale = 1.0f;
  int sliding_window = 0;  // >0: query at p sees keys at p-window+1 .. p
  float softcap = 0.0f;    // >0: scores = softcap * tanh(scores / softcap)
};

enum class GluActivation { kSilu, kGeluTanh };

// Per-sequence recurrent state of a hybrid model's linear-attention layers, reserved once at start like the KV
// pool: for each of num_layers layers and num_slots slots, conv_floats of conv history and ssm_floats of
// delta-rule state (F32).
struct RecurrentStateLayout {
  int num_layers = 0;
  int num_slots = 0;
  int64_t conv_floats = 0;
  int64_t ssm_floats = 0;
  uint64_t total_bytes() const {
    return static_cast<uint64_t>(num_layers) * num_slots * (conv_floats + ssm_floats) * sizeof(float);
  }
};

// A Gated DeltaNet layer (Qwen3-Next / Qwen3.5 linear attention), its parts after the input projections.
struct GatedDeltaNetParams {
  int num_k_heads = 0;
  int num_v_heads = 0;  // a multiple of num_k_heads: value head h reads key head h / (num_v_heads / num_k_heads)
  int k_head_dim = 0;
  int v_head_dim = 0;
  int conv_kernel = 0;
  float norm_eps = 1e-6f;
};
struct GatedDeltaNetWeights {
  Tensor conv;     // [2*key_dim + value_dim, conv_kernel]: depthwise causal conv over q|k|v, then silu
  Tensor A_log;    // [num_v_heads]: decay g = -exp(A_log) * softplus(a + dt_bias)
  Tensor dt_bias;  // [num_v_heads]
  Tensor norm;     // [v_head_dim]: gated RMSNorm weight (plain w, not 1 + w)
};

struct ExpertWeights {
  Tensor gate;  // [moe_intermediate, hidden]
  Tensor up;    // [moe_intermediate, hidden]
  Tensor down;  // [hidden, moe_intermediate]
};

struct MoeWeights {
  Tensor router;  // [num_experts, hidden]
  // An expert with empty tensors is another tensor-parallel rank's: it is routed to but contributes nothing
  // here (the ranks' outputs are summed).
  std::vector<ExpertWeights> experts;
  int top_k = 0;
  bool norm_topk_prob = false;
  GluActivation activation = GluActivation::kSilu;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;

  // --- Configuration, before any weight is bound. `weights` is the checkpoint's dominant dtype; a backend
  // picks its activation dtype from it (the CPU always computes in F32; CUDA in the weights' dtype).
  virtual void set_weights_dtype(DType weights) {}
  // Dtype of GEMM inputs (normed hidden states, attention and GLU outputs) and of the KV cache. The residual
  // stream, q/k/v and GEMM outputs are always F32.
  virtual DType act_dtype() const { return DType::kF32; }
  virtual DType kv_dtype() const { return DType::kF32; }

  // --- Memory. Called at start only; the forward pass allocates nothing.
  // The total the weights will take (in act_dtype, with alignment slack): a GPU reserves it as one arena, so
  // tensors bound one after another (q, k, v; gate, up) are adjacent and can run as one GEMM.
  virtual Status reserve_weights(uint64_t bytes) { return Status(); }
  // A weight from host bytes (the CPU may keep a view of the mapping; a GPU copies it up).
  virtual Result<Tensor> weight(DType dtype, int64_t rows, int64_t cols, const void* host) = 0;
  // A quantized weight kept packed, read through `m` (which outlives the tensor: the model owns it) by gemm,
  // gemm_many, gemm_glu, moe and embed. A backend that cannot (keeps_quantized() false) is handed the weight
  // dequantized through weight() instead (model/weights.cpp).
  virtual bool keeps_quantized() const { return false; }
  virtual Result<Tensor> quant_weight(const format::QuantMatrix& m) {
    return unsupported("{} backend: packed quantized weights", name());
  }
  virtual Result<Tensor> alloc(DType dtype, int64_t rows, int64_t cols) = 0;
  virtual Status alloc_kv(const KvLayout& layout) = 0;
  virtual const KvLayout& kv_layout() const = 0;
  virtual void copy_to_host(const Tensor& src, float* dst) = 0;        // as float32
  virtual void copy_from_host(const float* src, Tensor& dst) = 0;      // from float32
  // One KV block of every layer to or from host memory (the prefix cache's host and SSD tiers), returning
  // when the copy is done. Host layout: for each layer, its K then its V of the block, each
  // block_size x num_kv_heads x head_dim in the KV dtype: kv_layout().bytes_per_block_per_layer() x num_layers
  // bytes in all.
  virtual void copy_kv_block_to_host(int block, void* dst) = 0;
  virtual void copy_kv_block_from_host(const void* src, int block) = 0;
  virtual uint64_t bytes_allocated() const = 0;
  virtual uint64_t allocations() const = 0;  // count of device/host buffer allocations so far

  virtual Status reserve_forward(const ForwardLimits& limits) { return Status(); }

  // --- Per forward pass: makes the batch's metadata, tokens and logit rows visible to the ops (a GPU uploads
  // them once, before any graph replay). embed() and gather_rows() are then called with these same values.
  virtual void begin_forward(const BatchMeta& batch, const std::vector<int32_t>& tokens,
                             const std::vector<int32_t>& logit_rows) {}

  // --- Graphs: a backend that can record a forward pass of a fixed shape and replay it (CUDA graphs).
  // The model captures decode steps (one token per sequence); `key` identifies the shape.
  virtual bool supports_graphs() const { return false; }
  virtual bool replay(uint64_t key) { return false; }  // false: no graph for this key yet
  virtual void begin_capture() {}
  virtual Status end_capture(uint64_t key) { return Status(); }
  // Waits for queued work (for timing; reading results back synchronises anyway).
  virtual void synchronize() {}

  // --- Ops. Output tensors have the rows of their inputs; `out` may alias an input where noted.
  // out[i] = table[tokens[i]] * scale
  virtual void embed(const Tensor& table, const int32_t* tokens, int n, float scale, Tensor& out) = 0;
  // Per row: x / rms(x) * w (add_one: * (1 + w)); x is F32, out F32 or act_dtype. out may alias x.
  virtual void rms_norm(const Tensor& x, const Tensor& w, float eps, bool add_one, Tensor& out) = 0;
  // out = a + b (out may alias a).
  virtual void add(const Tensor& a, const Tensor& b, Tensor& out) = 0;
  // out[M,N] = x[M,K] * w[N,K]^T (+ bias[N]).
  virtual void gemm(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out) = 0;
  // Several projections of the same input (q, k, v). A backend may run them as one GEMM when the weights are
  // adjacent in memory.
  struct Projection {
    const Tensor* w;
    const Tensor* bias;  // may be null
    Tensor* out;
  };
  virtual void gemm_many(const Tensor& x, const Projection* p, int n) {
    for (int i = 0; i < n; i++) gemm(x, *p[i].w, p[i].bias, *p[i].out);
  }
  // out = act(x * gate^T) * (x * up^T); gate_out/up_out are F32 scratch of [rows, intermediate].
  virtual void gemm_glu(const Tensor& x, const Tensor& gate, const Tensor& up, GluActivation act, Tensor& gate_out,
                        Tensor& up_out, Tensor& out) {
    gemm(x, gate, nullptr, gate_out);
    gemm(x, up, nullptr, up_out);
    glu(gate_out, up_out, act, out);
  }
  // x += delta, then out = rms_norm(x) (the residual add fused with the next norm).
  virtual void add_rms_norm(Tensor& x, const Tensor& delta, const Tensor& w, float eps, bool add_one, Tensor& out) {
    add(x, delta, x);
    rms_norm(x, w, eps, add_one, out);
  }
  // In place on x [tokens, heads*head_dim], whose row r is batch row first_row + r (its position).
  virtual void rope(Tensor& x, int head_dim, int rotary_dim, const BatchMeta& batch, int first_row,
                    const RopeTable& table) = 0;
  // Stores k, v [tokens, kv_heads*head_dim] of `layer` at batch.slot_mapping.
  virtual void write_kv(int layer, const Tensor& k, const Tensor& v, const BatchMeta& batch) = 0;
  // rope(q) and rope(k) with one table from batch row 0, then write_kv(layer, k, v): what precedes attention,
  // which a GPU runs as one kernel.
  virtual void rope_write_kv(int layer, Tensor& q, Tensor& k, const Tensor& v, int head_dim, int rotary_dim,
                             const BatchMeta& batch, const RopeTable& table) {
    rope(q, head_dim, rotary_dim, batch, 0, table);
    rope(k, head_dim, rotary_dim, batch, 0, table);
    write_kv(layer, k, v, batch);
  }
  // Causal paged attention of q [tokens, heads*head_dim] against `layer`'s KV; out has q's shape.
  virtual void attention(int layer, const Tensor& q, const BatchMeta& batch, const AttentionParams& params,
                         Tensor& out) = 0;
  // out = act(gate) * up; gate, up F32, out act_dtype.
  virtual void glu(const Tensor& gate, const Tensor& up, GluActivation act, Tensor& out) = 0;
  // Top-k routed mixture of experts; x act_dtype, out F32 [tokens, hidden].
  virtual void moe(const Tensor& x, const MoeWeights& w, Tensor& out) = 0;
  // x = cap * tanh(x / cap), in place.
  virtual void softcap(Tensor& x, float cap) = 0;

  // --- Hybrid models (model/gated_deltanet.h). A backend without them says so when the model loads.
  virtual Status alloc_recurrent_state(const RecurrentStateLayout& layout) {
    return unsupported("{} backend: hybrid models (Gated DeltaNet layers) are not supported on {} yet; use "
                       "--backend cpu", name(), name());
  }
  // One Gated DeltaNet layer over the batch: qkv [tokens, 2*key_dim + value_dim] (projected, before the conv),
  // z [tokens, value_dim], b and a [tokens, num_v_heads], all F32; per sequence (its state_slot in `layer`'s
  // states) the causal conv with its history, silu, L2-normed q and k (q scaled by 1/sqrt(k_head_dim)), beta =
  // sigmoid(b), the gated delta rule, then RMSNorm(out) * w * silu(z) per value head into out [tokens,
  // value_dim] (act_dtype). The states end holding the slices' last positions.
  virtual Status gated_delta_net(int layer, const Tensor& qkv, const Tensor& z, const Tensor& b, const Tensor& a,
                                 const GatedDeltaNetWeights& w, const GatedDeltaNetParams& p, const BatchMeta& batch,
                                 Tensor& out) {
    return unsupported("{} backend: gated_delta_net", name());
  }
  // out = x * sigmoid(gate), gate of x's shape or one column per row (broadcast); out may alias x. F32.
  virtual Status sigmoid_mul(const Tensor& x, const Tensor& gate, Tensor& out) {
    return unsupported("{} backend: sigmoid_mul", name());
  }
  // out[i] = x[rows[i]].
  virtual void gather_rows(const Tensor& x, const std::vector<int32_t>& rows, Tensor& out) = 0;
  // out[r] = the index of row r's largest value, the lowest index on ties (greedy sampling); logits F32
  // [rows, vocab], out on the host. value (optional, host): each row's largest value itself, which
  // vocab-parallel greedy compares across ranks. A device backend reduces on the device and copies back only
  // the indices (and values).
  virtual void argmax_rows(const Tensor& logits, int32_t* out, float* value = nullptr) {
    std::vector<float> host(static_cast<size_t>(logits.numel()));
    copy_to_host(logits, host.data());
    for (int64_t r = 0; r < logits.rows; r++) {
      const float* row = host.data() + r * logits.cols;
      int64_t best = 0;
      for (int64_t v = 1; v < logits.cols; v++)
        if (row[v] > row[best]) best = v;
      out[r] = static_cast<int32_t>(best);
      if (value != nullptr) value[r] = row[best];
    }
  }
  // out[r] = a token drawn from row r of logits F32 [rows, vocab] with params[r] (backend/sampling.h: the same
  // token on every backend), out on the host. A device backend samples on the device and copies back only the
  // ids; this default copies the logits to the host and runs the reference.
  virtual void sample_rows(const Tensor& logits, const SampleParams* params, int rows, int32_t* out) {
    std::vector<float> host(static_cast<size_t>(rows) * logits.cols);
    copy_to_host(logits.row_slice(0, rows), host.data());
    sampling::SampleScratch scratch;
    const int64_t vocab = logits.cols;
    for (int r = 0; r < rows; r++)
      out[r] = sampling::sample_row(host.data() + static_cast<size_t>(r) * vocab, vocab, params[r], scratch);
  }
};

std::unique_ptr<Backend> make_cpu_backend();

}  // namespace keel::backend
