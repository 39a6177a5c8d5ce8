#include "model/model.h"

#include <algorithm>
#include <map>

#include "model/rope.h"

namespace keel::model {

using backend::Tensor;

namespace {

Status reserve_weights(const ModelConfig& c, ShardSpec shard, backend::Backend* backend) {
  const WeightCount n = count_weights(c, shard);
  return backend->reserve_weights(n.parameters * dtype_size(backend->act_dtype()) + n.tensors * 256);
}

}  // namespace

Result<std::unique_ptr<Model>> Model::load(env::Env* env, const std::string& dir, backend::Backend* backend,
                                           const LoadOptions& options) {
  auto model = std::unique_ptr<Model>(new Model());
  if (!env->is_directory(dir)) return not_found("{}: not a directory", dir);
  KEEL_ASSIGN_OR_RETURN(model->config_, load_config(env, dir));
  model->backend_ = backend;
  model->options_ = options;
  KEEL_RETURN_IF_ERROR(model->init_shard());
  KEEL_ASSIGN_OR_RETURN(model->files_, format::WeightFiles::open(env, dir));
  backend->set_weights_dtype(model->files_.dominant_dtype());
  KEEL_RETURN_IF_ERROR(reserve_weights(model->config_, model->shard_.spec, backend));
  KEEL_ASSIGN_OR_RETURN(model->weights_, bind_weights(model->config_, model->files_, backend, model->shard_.spec));
  KEEL_RETURN_IF_ERROR(model->init_buffers());
  return model;
}

Result<std::unique_ptr<Model>> Model::synthetic(const ModelConfig& config, backend::Backend* backend,
                                                const LoadOptions& options, uint64_t seed) {
  auto model = std::unique_ptr<Model>(new Model());
  model->config_ = config;
  model->backend_ = backend;
  model->options_ = options;
  KEEL_RETURN_IF_ERROR(model->init_shard());
  backend->set_weights_dtype(DType::kBF16);
  KEEL_RETURN_IF_ERROR(reserve_weights(config, model->shard_.spec, backend));
  KEEL_ASSIGN_OR_RETURN(model->weights_, synthetic_weights(config, backend, seed, model->shard_.spec));
  KEEL_RETURN_IF_ERROR(model->init_buffers());
  return model;
}

// This rank's slice of the model; the whole of it without a communicator.
Status Model::init_shard() {
  comm_ = options_.communicator;
  const ShardSpec spec = comm_ ? ShardSpec{comm_->rank(), comm_->size()} : ShardSpec{};
  KEEL_ASSIGN_OR_RETURN(shard_, shard_layout(config_, spec));
  local_ = local_config(config_, shard_);
  return Status();
}

// Activation buffers for max_batch_tokens and the KV pool: everything the forward pass touches.
Status Model::init_buffers() {
  const ModelConfig& c = local_;
  if (options_.max_batch_tokens <= 0)
    return invalid_argument("max_batch_tokens={} must be positive", options_.max_batch_tokens);
  if (options_.block_size <= 0) return invalid_argument("block size {} must be positive", options_.block_size);
  const int64_t T = options_.max_batch_tokens;
  const int64_t inter = c.intermediate_size;
  const DType act = backend_->act_dtype();
  auto alloc = [&](int64_t cols, Tensor* t, DType dtype = DType::kF32) -> Status {
    KEEL_ASSIGN_OR_RETURN(*t, backend_->alloc(dtype, T, cols));
    return Status();
  };
  KEEL_RETURN_IF_ERROR(alloc(c.hidden_size, &ws_.x));
  KEEL_RETURN_IF_ERROR(alloc(c.hidden_size, &ws_.h, act));
  KEEL_RETURN_IF_ERROR(alloc(c.q_size(), &ws_.q));
  KEEL_RETURN_IF_ERROR(alloc(c.kv_size(), &ws_.k));
  KEEL_RETURN_IF_ERROR(alloc(c.kv_size(), &ws_.v));
  KEEL_RETURN_IF_ERROR(alloc(c.q_size(), &ws_.attn, act));
  KEEL_RETURN_IF_ERROR(alloc(c.hidden_size, &ws_.o));
  KEEL_RETURN_IF_ERROR(alloc(inter, &ws_.gate));
  KEEL_RETURN_IF_ERROR(alloc(inter, &ws_.up));
  KEEL_RETURN_IF_ERROR(alloc(inter, &ws_.act, act));
  KEEL_RETURN_IF_ERROR(alloc(c.hidden_size, &ws_.mlp));
  KEEL_RETURN_IF_ERROR(alloc(c.hidden_size, &ws_.logit_in, act));
  KEEL_RETURN_IF_ERROR(alloc(shard_.vocab, &ws_.logits));
  if (comm_ != nullptr && !comm_->on_device()) comm_buf_.resize(T * std::max<int64_t>(c.hidden_size, shard_.vocab));
  if (comm_ != nullptr && comm_->on_device() && !ws_.logits.empty()) {
    // Device collectives reduce in place; only the gathered logits come to the host, from here.
    KEEL_ASSIGN_OR_RETURN(ws_.gathered, backend_->alloc(DType::kF32, T * comm_->size(), shard_.vocab));
  }
  if (comm_ != nullptr) {
    gather_buf_.resize(T * static_cast<int64_t>(c.vocab_size));
    local_tokens_.reserve(T);
  }
  backend::KvLayout kv;
  kv.num_layers = c.num_layers;
  kv.block_size = options_.block_size;
  kv.num_kv_heads = c.num_kv_heads;
  kv.head_dim = c.head_dim;
  kv.dtype = backend_->kv_dtype();
  kv.num_blocks = options_.kv_blocks > 0 ? options_.kv_blocks
                                         : (c.max_position_embeddings + kv.block_size - 1) / kv.block_size;
  KEEL_RETURN_IF_ERROR(backend_->alloc_kv(kv));

  backend::ForwardLimits limits;
  limits.max_tokens = options_.max_batch_tokens;
  limits.max_seqs = options_.max_batch_tokens;
  const int64_t blocks_per_seq = std::min<int64_t>(kv.num_blocks, (c.max_position_embeddings + kv.block_size - 1) / kv.block_size);
  // Sequences may share blocks (prefix reuse), so tables can sum past the pool: bound by each one's maximum.
  limits.max_block_table_entries = std::min<int64_t>(static_cast<int64_t>(limits.max_seqs) * blocks_per_seq, 1 << 24);
  limits.hidden = c.hidden_size;
  limits.max_fused_cols = std::max(c.q_size() + 2 * c.kv_size(), 2 * c.intermediate_size);
  bool moe = false;
  for (auto& l : c.layers) moe |= l.moe;
  if (moe) {
    limits.num_experts = c.num_experts;
    limits.experts_per_token = c.num_experts_per_tok;
    limits.moe_intermediate = c.moe_intermediate_size;
  }
  KEEL_RETURN_IF_ERROR(backend_->reserve_forward(limits));
  max_table_entries_ = limits.max_block_table_entries;

  dynamic_rope_ = c.rope.type == RopeType::kDynamic || c.rope_local.type == RopeType::kDynamic;
  if (!dynamic_rope_) {
    rope_global_ = make_rope_table(c.rope, c.head_dim, c.max_position_embeddings, 0);
    rope_global_.id = 0;
    rope_local_ = make_rope_table(c.rope_local, c.head_dim, c.max_position_embeddings, 0);
    rope_local_.id = 1;
  }
  // MoE routes on the host today, which a captured graph cannot do.
  // Host collectives run on the host between ops, which a captured graph cannot do either.
  // Device collectives (NCCL) are captured into the graph with the kernels.
  graphable_ = backend_->supports_graphs() && !dynamic_rope_ && !moe && (comm_ == nullptr || comm_->on_device());
  return Status();
}

uint64_t Model::kv_bytes_per_token() const {
  return 2ull * local_.num_layers * local_.num_kv_heads * local_.head_dim * dtype_size(kv_layout().dtype);
}

// Sums a row-parallel layer's partial output over the ranks: in place on the device with a device communicator
// (queued on the backend's stream), else staged through host memory so that any backend works.
Status Model::all_reduce(Tensor& t) {
  if (comm_ == nullptr) return Status();
  if (comm_->on_device()) return comm_->all_reduce_sum_device(t.data, static_cast<size_t>(t.numel()), t.dtype);
  backend_->copy_to_host(t, comm_buf_.data());
  KEEL_RETURN_IF_ERROR(comm_->all_reduce_sum(comm_buf_.data(), static_cast<size_t>(t.numel())));
  backend_->copy_from_host(comm_buf_.data(), t);
  return Status();
}

// Vocab-parallel logits: every rank has [rows, vocab/N] of its slice; the full rows interleave the slices.
Status Model::gather_logits(const Tensor& local, int rows, std::vector<float>* logits) {
  const size_t n = static_cast<size_t>(rows) * shard_.vocab, slice = static_cast<size_t>(shard_.vocab);
  if (comm_->on_device()) {
    // The wait also checks the group: a dead or hung rank fails this forward instead of blocking it for ever.
    Tensor all = ws_.gathered.row_slice(0, static_cast<int64_t>(comm_->size()) * rows);
    KEEL_RETURN_IF_ERROR(comm_->all_gather_device(local.data, n, DType::kF32, all.data));
    KEEL_RETURN_IF_ERROR(comm_->synchronize());
    backend_->copy_to_host(all, gather_buf_.data());
  } else {
    backend_->copy_to_host(local, comm_buf_.data());
    KEEL_RETURN_IF_ERROR(comm_->all_gather(comm_buf_.data(), n, gather_buf_.data()));
  }
  for (int r = 0; r < comm_->size(); r++)
    for (int i = 0; i < rows; i++)
      std::copy_n(gather_buf_.data() + r * n + i * slice, slice,
                  logits->data() + static_cast<size_t>(i) * config_.vocab_size + r * slice);
  return Status();
}

Status Model::forward(const Batch& batch, std::vector<float>* logits) {
  const ModelConfig& c = local_;
  const int T = static_cast<int>(batch.tokens.size());
  if (T == 0) return invalid_argument("forward: empty batch");
  if (T > options_.max_batch_tokens)
    return invalid_argument("forward: {} tokens exceed max_batch_tokens={}", T, options_.max_batch_tokens);
  if (static_cast<int>(batch.meta.positions.size()) != T || static_cast<int>(batch.meta.slot_mapping.size()) != T)
    return internal_error("forward: positions/slot_mapping sizes differ from the {} tokens", T);
  for (int32_t tok : batch.tokens)
    if (tok < 0 || tok >= c.vocab_size)
      return invalid_argument("token id {} is outside the vocabulary [0, {})", tok, c.vocab_size);
  const int max_slot = kv_layout().num_blocks * kv_layout().block_size;
  for (int32_t s : batch.meta.slot_mapping)
    if (s < 0 || s >= max_slot) return internal_error("forward: KV slot {} outside the pool of {}", s, max_slot);
  int64_t table_entries = 0;
  for (auto& s : batch.meta.seqs) table_entries += static_cast<int64_t>(s.block_table.size());
  if (table_entries > max_table_entries_)
    return internal_error("forward: {} block-table entries exceed the reserved {}", table_entries, max_table_entries_);

  backend::Backend& B = *backend_;
  Tensor x = ws_.x.row_slice(0, T), h = ws_.h.row_slice(0, T), q = ws_.q.row_slice(0, T),
         k = ws_.k.row_slice(0, T), v = ws_.v.row_slice(0, T), attn = ws_.attn.row_slice(0, T),
         o = ws_.o.row_slice(0, T), mlp = ws_.mlp.row_slice(0, T);

  // Rope: fixed tables, except dynamic NTK, whose frequencies depend on each sequence's length.
  auto apply_rope = [&](Tensor& t, bool sliding) {
    const RopeConfig& rc = sliding ? c.rope_local : c.rope;
    if (!dynamic_rope_) {
      B.rope(t, c.head_dim, c.rotary_dim(), batch.meta, 0, sliding ? rope_local_ : rope_global_);
      return;
    }
    for (auto& s : batch.meta.seqs) {
      Tensor part = t.row_slice(s.q_start, s.q_len);
      B.rope(part, c.head_dim, c.rotary_dim(), batch.meta, s.q_start,
             make_rope_table(rc, c.head_dim, c.max_position_embeddings, s.kv_len));
    }
  };

  const int n = static_cast<int>(batch.logit_rows.size());
  if (n > T) return internal_error("forward: {} logit rows for a batch of {} tokens", n, T);
  for (int32_t r : batch.logit_rows)
    if (r < 0 || r >= T) return internal_error("forward: logit row {} outside the batch of {}", r, T);
  logits->resize(static_cast<size_t>(n) * c.vocab_size);
  Tensor out = ws_.logits.row_slice(0, n);

  // Vocab parallel: ids in this rank's slice, others pointing at its zero row (the slice's last + 1).
  const std::vector<int32_t>* tokens = &batch.tokens;
  if (comm_ != nullptr) {
    local_tokens_.clear();
    for (int32_t t : batch.tokens)
      local_tokens_.push_back(t >= shard_.vocab0 && t < shard_.vocab0 + shard_.vocab ? t - shard_.vocab0 : shard_.vocab);
    tokens = &local_tokens_;
  }
  B.begin_forward(batch.meta, *tokens, batch.logit_rows);
  // Decode steps (one token per sequence, logits for each) replay a graph captured per batch size.
  bool decode = n == T;
  for (auto& s : batch.meta.seqs) decode &= s.q_len == 1;
  // Never in the first forward: it makes the backend's fixed tables resident, which a capture cannot do.
  const bool graph = graphable_ && decode && forwards_++ > 0;
  const uint64_t key = static_cast<uint64_t>(T);
  if (graph && B.replay(key)) {
    if (comm_ != nullptr) return gather_logits(out, n, logits);
    B.copy_to_host(out, logits->data());
    return Status();
  }
  if (graph) B.begin_capture();
  B.embed(weights_.embed, tokens->data(), T, c.embed_scale, x);
  KEEL_RETURN_IF_ERROR(all_reduce(x));
  const auto glu = c.activation == Activation::kSilu ? backend::GluActivation::kSilu : backend::GluActivation::kGeluTanh;
  for (int li = 0; li < c.num_layers; li++) {
    const LayerWeights& L = weights_.layers[li];
    const LayerSpec& spec = c.layers[li];
    // Attention block. The previous layer's MLP output joins the residual stream in the same kernel as this
    // layer's input norm.
    if (li == 0) B.rms_norm(x, L.input_norm, c.rms_norm_eps, c.norm_add_one, h);
    else B.add_rms_norm(x, mlp, L.input_norm, c.rms_norm_eps, c.norm_add_one, h);
    auto bias = [](const Tensor& b) { return b.empty() ? nullptr : &b; };
    const backend::Backend::Projection qkv[3] = {
        {&L.q, bias(L.q_bias), &q}, {&L.k, bias(L.k_bias), &k}, {&L.v, bias(L.v_bias), &v}};
    B.gemm_many(h, qkv, 3);
    if (c.qk_norm) {
      Tensor qh = q.reshaped(c.head_dim), kh = k.reshaped(c.head_dim);
      B.rms_norm(qh, L.q_norm, c.rms_norm_eps, c.norm_add_one, qh);
      B.rms_norm(kh, L.k_norm, c.rms_norm_eps, c.norm_add_one, kh);
    }
    apply_rope(q, spec.sliding);
    apply_rope(k, spec.sliding);
    B.write_kv(li, k, v, batch.meta);
    backend::AttentionParams ap;
    ap.num_heads = c.num_heads;
    ap.num_kv_heads = c.num_kv_heads;
    ap.head_dim = c.head_dim;
    ap.scale = c.attn_scale;
    ap.sliding_window = spec.sliding ? c.sliding_window : 0;
    ap.softcap = c.attn_softcap;
    B.attention(li, q, batch.meta, ap, attn);
    B.gemm(attn, L.o, bias(L.o_bias), o);
    KEEL_RETURN_IF_ERROR(all_reduce(o));
    if (c.sandwich_norms) B.rms_norm(o, L.post_attn_norm, c.rms_norm_eps, c.norm_add_one, o);

    // MLP block.
    const Tensor& ffn_norm = c.sandwich_norms ? L.pre_ffn_norm : L.post_attn_norm;
    B.add_rms_norm(x, o, ffn_norm, c.rms_norm_eps, c.norm_add_one, h);
    if (spec.moe) {
      B.moe(h, L.moe, mlp);
    } else {
      Tensor gate = ws_.gate.row_slice(0, T), up = ws_.up.row_slice(0, T), act = ws_.act.row_slice(0, T);
      if (L.gate_bias.empty() && L.up_bias.empty()) {
        B.gemm_glu(h, L.gate, L.up, glu, gate, up, act);
      } else {
        B.gemm(h, L.gate, bias(L.gate_bias), gate);
        B.gemm(h, L.up, bias(L.up_bias), up);
        B.glu(gate, up, glu, act);
      }
      B.gemm(act, L.down, bias(L.down_bias), mlp);
    }
    KEEL_RETURN_IF_ERROR(all_reduce(mlp));
    if (c.sandwich_norms) B.rms_norm(mlp, L.post_ffn_norm, c.rms_norm_eps, c.norm_add_one, mlp);
  }
  B.add(x, mlp, x);

  // Logits only for the rows that need them.
  if (n > 0) {
    Tensor rows = ws_.o.row_slice(0, n), normed = ws_.logit_in.row_slice(0, n);
    B.gather_rows(x, batch.logit_rows, rows);
    B.rms_norm(rows, weights_.final_norm, c.rms_norm_eps, c.norm_add_one, normed);
    B.gemm(normed, weights_.lm_head, nullptr, out);
    if (c.final_softcap > 0) B.softcap(out, c.final_softcap);
  }
  if (graph) {
    KEEL_RETURN_IF_ERROR(B.end_capture(key));
    if (!B.replay(key)) return internal_error("forward: graph for {} tokens was captured but cannot replay", T);
  }
  if (n == 0) return Status();
  if (comm_ != nullptr) return gather_logits(out, n, logits);
  B.copy_to_host(out, logits->data());
  return Status();
}

}  // namespace keel::model
