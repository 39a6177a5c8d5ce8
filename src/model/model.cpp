#include "model/model.h"

#include <algorithm>
#include <map>

#include "format/gguf.h"
#include "model/pipeline.h"
#include "model/rope.h"
#include "model/vocab_parallel.h"

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
  if (!env->is_directory(dir) && !(format::is_gguf_path(dir) && env->file_exists(dir)))
    return not_found("{}: not a model directory or a .gguf file", dir);
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

// This rank's slice of the model (its stage's layers, its tensor-parallel part of them); the whole of it without
// communicators.
Status Model::init_shard() {
  comm_ = options_.communicator;
  pipe_ = options_.pipeline;
  ShardSpec spec;
  if (comm_ != nullptr) spec.rank = comm_->rank(), spec.size = comm_->size();
  if (pipe_ != nullptr) spec.stage = pipe_->rank(), spec.stages = pipe_->size();
  if (options_.micro_batches < 0)
    return invalid_argument("micro_batches={} must be >= 0 (0: one per pipeline stage)", options_.micro_batches);
  if (config_.hybrid() && (comm_ != nullptr || pipe_ != nullptr))
    return unsupported("{} (a hybrid model) with tensor or pipeline parallelism is not supported yet",
                       config_.architecture);
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
  if (options_.max_logit_rows < 0)
    return invalid_argument("max_logit_rows={} must be >= 0 (0: max_batch_tokens)", options_.max_logit_rows);
  const int64_t L = max_logit_rows_ = options_.max_logit_rows > 0 ? std::min<int64_t>(options_.max_logit_rows, T) : T;
  // A hybrid MoE's shared expert runs in the dense MLP's scratch.
  const int64_t inter = std::max(c.intermediate_size, c.shared_expert_intermediate_size);
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
  if (shard_.head) {  // the last pipeline stage's
    KEEL_ASSIGN_OR_RETURN(ws_.logit_in, backend_->alloc(act, L, c.hidden_size));
    KEEL_ASSIGN_OR_RETURN(ws_.logits, backend_->alloc(DType::kF32, L, shard_.vocab));
  }
  if (comm_ != nullptr && !comm_->on_device()) comm_buf_.resize(std::max(T * c.hidden_size, L * shard_.vocab));
  if (comm_ != nullptr && comm_->on_device() && !ws_.logits.empty()) {
    // Device collectives reduce in place; only the gathered logits come to the host, from here.
    KEEL_ASSIGN_OR_RETURN(ws_.gathered, backend_->alloc(DType::kF32, L * comm_->size(), shard_.vocab));
  }
  if (comm_ != nullptr) {
    gather_buf_.resize(L * static_cast<int64_t>(c.vocab_size));
    local_tokens_.reserve(T);
    row_max_.resize(L);
    row_max_pairs_.resize(2 * L);
    row_max_gathered_.resize(2 * L * comm_->size());
  }
  if (pipe_ != nullptr) {
    pipe_buf_.resize(T * c.hidden_size);
    // The last stage's gathered tensor-parallel logits of a micro-batch, before they go to their rows.
    if (shard_.head && comm_ != nullptr) pipe_logits_.resize(L * static_cast<int64_t>(c.vocab_size));
  }
  // Linear-attention layers keep a recurrent state instead of KV.
  kv_layer_.assign(c.num_layers, -1);
  state_layer_.assign(c.num_layers, -1);
  int kv_layers = 0, state_layers = 0;
  for (int i = 0; i < c.num_layers; i++) {
    if (c.layers[i].linear) state_layer_[i] = state_layers++;
    else kv_layer_[i] = kv_layers++;
  }
  backend::KvLayout kv;
  kv.num_layers = kv_layers;
  kv.block_size = options_.block_size;
  kv.num_kv_heads = c.num_kv_heads;
  kv.head_dim = c.head_dim;
  kv.dtype = backend_->kv_dtype();
  kv.num_blocks = options_.kv_blocks > 0 ? options_.kv_blocks
                                         : (c.max_position_embeddings + kv.block_size - 1) / kv.block_size;
  KEEL_RETURN_IF_ERROR(backend_->alloc_kv(kv));
  if (c.hybrid()) {
    if (options_.state_slots < 0) return invalid_argument("state_slots={} must be >= 0", options_.state_slots);
    state_slots_ = options_.state_slots > 0 ? options_.state_slots : static_cast<int>(L);
    KEEL_RETURN_IF_ERROR(backend_->alloc_recurrent_state(recurrent_state_layout(c, state_slots_)));
    KEEL_RETURN_IF_ERROR(alloc_hybrid_workspace(c, *backend_, T, &hybrid_ws_));
  }

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
  // Pipeline sends and host collectives run on the host between ops, which a captured graph cannot do either.
  // Device collectives (NCCL) are captured into the graph with the kernels.
  graphable_ =
      backend_->supports_graphs() && !dynamic_rope_ && (comm_ == nullptr || comm_->on_device()) && pipe_ == nullptr;
  return Status();
}

uint64_t Model::recurrent_state_bytes() const {
  return state_slots_ > 0 ? recurrent_state_layout(local_, state_slots_).total_bytes() : 0;
}

uint64_t Model::kv_bytes_per_token() const {
  return 2ull * kv_layout().num_layers * local_.num_kv_heads * local_.head_dim * dtype_size(kv_layout().dtype);
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

// Greedy tokens of vocab-parallel logits: this rank's argmax of its slice, then one (value, global id) pair per
// row and rank through the host all-gather. On 2xH100 (llama3-8b, batch 64) gathering the logits instead moved
// 33 MB to the host and scanned 8M floats there every step: TP=2 decoded at 2386 tok/s against 7231 at TP=1.
Status Model::vocab_parallel_greedy(const Tensor& local, int rows, std::vector<int32_t>* tokens) {
  // The wait checks the group (as in gather_logits): a dead or hung rank fails this forward instead of
  // blocking argmax_rows' copy off the device for ever.
  if (comm_->on_device()) KEEL_RETURN_IF_ERROR(comm_->synchronize());
  backend_->argmax_rows(local, tokens->data(), row_max_.data());
  pack_row_maxima(row_max_.data(), tokens->data(), shard_.vocab0, rows, row_max_pairs_.data());
  KEEL_RETURN_IF_ERROR(comm_->all_gather(row_max_pairs_.data(), 2 * static_cast<size_t>(rows),
                                         row_max_gathered_.data()));
  merge_row_maxima(row_max_gathered_.data(), comm_->size(), rows, tokens->data());
  return Status();
}

Status Model::check_batch(const Batch& batch) const {
  const int T = static_cast<int>(batch.tokens.size());
  if (T == 0) return invalid_argument("forward: empty batch");
  if (T > options_.max_batch_tokens)
    return invalid_argument("forward: {} tokens exceed max_batch_tokens={}", T, options_.max_batch_tokens);
  if (static_cast<int>(batch.meta.positions.size()) != T || static_cast<int>(batch.meta.slot_mapping.size()) != T)
    return internal_error("forward: positions/slot_mapping sizes differ from the {} tokens", T);
  for (int32_t tok : batch.tokens)
    if (tok < 0 || tok >= config_.vocab_size)
      return invalid_argument("token id {} is outside the vocabulary [0, {})", tok, config_.vocab_size);
  const int max_slot = kv_layout().num_blocks * kv_layout().block_size;
  for (int32_t s : batch.meta.slot_mapping)
    if (s < 0 || s >= max_slot) return internal_error("forward: KV slot {} outside the pool of {}", s, max_slot);
  int64_t table_entries = 0;
  for (auto& s : batch.meta.seqs) table_entries += static_cast<int64_t>(s.block_table.size());
  if (table_entries > max_table_entries_)
    return internal_error("forward: {} block-table entries exceed the reserved {}", table_entries, max_table_entries_);
  const int n = static_cast<int>(batch.logit_rows.size());
  if (n > T) return internal_error("forward: {} logit rows for a batch of {} tokens", n, T);
  if (n > max_logit_rows_)
    return invalid_argument("forward: {} logit rows exceed max_logit_rows={}", n, max_logit_rows_);
  for (int32_t r : batch.logit_rows)
    if (r < 0 || r >= T) return internal_error("forward: logit row {} outside the batch of {}", r, T);
  if (state_slots_ > 0)
    for (auto& s : batch.meta.seqs)
      if (s.state_slot < 0 || s.state_slot >= state_slots_)
        return internal_error("forward: recurrent-state slot {} outside the pool of {}", s.state_slot, state_slots_);
  return Status();
}

// Vocab parallel: ids in this rank's slice, others pointing at its zero row (the slice's last + 1).
const std::vector<int32_t>& Model::local_tokens(const std::vector<int32_t>& tokens) {
  if (comm_ == nullptr) return tokens;
  local_tokens_.clear();
  for (int32_t t : tokens)
    local_tokens_.push_back(t >= shard_.vocab0 && t < shard_.vocab0 + shard_.vocab ? t - shard_.vocab0 : shard_.vocab);
  return local_tokens_;
}

Status Model::embed(const std::vector<int32_t>& tokens) {
  const int T = static_cast<int>(tokens.size());
  Tensor x = ws_.x.row_slice(0, T);
  backend_->embed(weights_.embed, tokens.data(), T, local_.embed_scale, x);
  return all_reduce(x);
}

// This stage's layers over the residual stream ws_.x; x ends complete (the last MLP output added). rope_len:
// per sequence, the length dynamic rope scales by (null: each slice's kv_len).
Status Model::run_layers(const backend::BatchMeta& meta, const std::vector<int32_t>* rope_len) {
  const ModelConfig& c = local_;
  const int T = meta.num_tokens();
  backend::Backend& B = *backend_;
  Tensor x = ws_.x.row_slice(0, T), h = ws_.h.row_slice(0, T), q = ws_.q.row_slice(0, T),
         k = ws_.k.row_slice(0, T), v = ws_.v.row_slice(0, T), attn = ws_.attn.row_slice(0, T),
         o = ws_.o.row_slice(0, T), mlp = ws_.mlp.row_slice(0, T);

  // Dynamic NTK rope: the frequencies depend on each sequence's length (fixed tables go with the KV write).
  auto apply_rope = [&](Tensor& t, bool sliding) {
    const RopeConfig& rc = sliding ? c.rope_local : c.rope;
    for (size_t i = 0; i < meta.seqs.size(); i++) {
      const backend::SeqSlice& s = meta.seqs[i];
      Tensor part = t.row_slice(s.q_start, s.q_len);
      B.rope(part, c.head_dim, c.rotary_dim(), meta, s.q_start,
             make_rope_table(rc, c.head_dim, c.max_position_embeddings, rope_len ? (*rope_len)[i] : s.kv_len));
    }
  };

  const auto glu = c.activation == Activation::kSilu ? backend::GluActivation::kSilu : backend::GluActivation::kGeluTanh;
  // li indexes the stage's layers (its weights and its KV cache); c.layers holds the stage's specs.
  for (int li = 0; li < c.num_layers; li++) {
    const LayerWeights& L = weights_.layers[li];
    const LayerSpec& spec = c.layers[li];
    // Attention block. The previous layer's MLP output joins the residual stream in the same kernel as this
    // layer's input norm.
    if (li == 0) B.rms_norm(x, L.input_norm, c.rms_norm_eps, c.norm_add_one, h);
    else B.add_rms_norm(x, mlp, L.input_norm, c.rms_norm_eps, c.norm_add_one, h);
    auto bias = [](const Tensor& b) { return b.empty() ? nullptr : &b; };
    if (spec.linear) {
      KEEL_RETURN_IF_ERROR(gated_deltanet_block(B, c, L, state_layer_[li], h, meta, hybrid_ws_, o));
    } else {
      const backend::Backend::Projection qkv[3] = {
          {&L.q, bias(L.q_bias), &q}, {&L.k, bias(L.k_bias), &k}, {&L.v, bias(L.v_bias), &v}};
      B.gemm_many(h, qkv, 3);
      if (c.qk_norm) {
        Tensor qh = q.reshaped(c.head_dim), kh = k.reshaped(c.head_dim);
        B.rms_norm(qh, L.q_norm, c.rms_norm_eps, c.norm_add_one, qh);
        B.rms_norm(kh, L.k_norm, c.rms_norm_eps, c.norm_add_one, kh);
      }
      if (dynamic_rope_) {
        apply_rope(q, spec.sliding);
        apply_rope(k, spec.sliding);
        B.write_kv(kv_layer_[li], k, v, meta);
      } else {
        B.rope_write_kv(kv_layer_[li], q, k, v, c.head_dim, c.rotary_dim(), meta, spec.sliding ? rope_local_ : rope_global_);
      }
      backend::AttentionParams ap;
      ap.num_heads = c.num_heads;
      ap.num_kv_heads = c.num_kv_heads;
      ap.head_dim = c.head_dim;
      ap.scale = c.attn_scale;
      ap.sliding_window = spec.sliding ? c.sliding_window : 0;
      ap.softcap = c.attn_softcap;
      B.attention(kv_layer_[li], q, meta, ap, attn);
      if (!L.attn_gate.empty()) {
        Tensor gate = hybrid_ws_.gate.row_slice(0, T);
        B.gemm(h, L.attn_gate, nullptr, gate);
        KEEL_RETURN_IF_ERROR(B.sigmoid_mul(attn, gate, attn));
      }
      B.gemm(attn, L.o, bias(L.o_bias), o);
    }
    KEEL_RETURN_IF_ERROR(all_reduce(o));
    if (c.sandwich_norms) B.rms_norm(o, L.post_attn_norm, c.rms_norm_eps, c.norm_add_one, o);

    // MLP block.
    const Tensor& ffn_norm = c.sandwich_norms ? L.pre_ffn_norm : L.post_attn_norm;
    B.add_rms_norm(x, o, ffn_norm, c.rms_norm_eps, c.norm_add_one, h);
    if (spec.moe) {
      B.moe(h, L.moe, mlp);
      if (!L.shared_gate.empty())
        KEEL_RETURN_IF_ERROR(add_shared_expert(B, c, L, h, ws_.gate.data, ws_.up.data, ws_.act.data, hybrid_ws_, mlp));
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
  return Status();
}

// Logits only for the rows that need them, into ws_.logits[0, n): this rank's vocab slice when sharded.
void Model::head(const std::vector<int32_t>& logit_rows) {
  const ModelConfig& c = local_;
  const int n = static_cast<int>(logit_rows.size());
  backend::Backend& B = *backend_;
  Tensor rows = ws_.o.row_slice(0, n), normed = ws_.logit_in.row_slice(0, n), out = ws_.logits.row_slice(0, n);
  B.gather_rows(ws_.x, logit_rows, rows);
  B.rms_norm(rows, weights_.final_norm, c.rms_norm_eps, c.norm_add_one, normed);
  B.gemm(normed, weights_.lm_head, nullptr, out);
  if (c.final_softcap > 0) B.softcap(out, c.final_softcap);
}

Status Model::forward(const Batch& batch, std::vector<float>* logits) { return forward_impl(batch, logits, nullptr); }

Status Model::forward_greedy(const Batch& batch, std::vector<int32_t>* tokens) {
  if (!greedy_on_device()) return internal_error("forward_greedy: a pipeline stage has no device argmax; use forward");
  return forward_impl(batch, nullptr, tokens);
}

Status Model::forward_sample(const Batch& batch, const std::vector<backend::SampleParams>& params,
                             std::vector<int32_t>* tokens) {
  if (!sample_on_device())
    return internal_error("forward_sample: a pipeline stage or tensor-parallel rank has no device draw; use forward");
  if (params.size() != batch.logit_rows.size())
    return internal_error("forward_sample: {} sampling params for {} logit rows", params.size(),
                          batch.logit_rows.size());
  return forward_impl(batch, nullptr, tokens, params.data());
}

Status Model::forward_impl(const Batch& batch, std::vector<float>* logits, std::vector<int32_t>* greedy,
                           const backend::SampleParams* sample) {
  KEEL_RETURN_IF_ERROR(check_batch(batch));
  const int T = static_cast<int>(batch.tokens.size());
  const int n = static_cast<int>(batch.logit_rows.size());
  if (greedy != nullptr) greedy->resize(n);
  if (logits != nullptr) logits->resize(static_cast<size_t>(n) * config_.vocab_size);
  if (pipe_ != nullptr) return forward_pipelined(batch, logits);

  backend::Backend& B = *backend_;
  Tensor out = ws_.logits.row_slice(0, n);
  const std::vector<int32_t>& tokens = local_tokens(batch.tokens);
  B.begin_forward(batch.meta, tokens, batch.logit_rows);
  // Decode steps (one token per sequence, logits for each) replay a graph captured per batch size.
  bool decode = n == T;
  for (auto& s : batch.meta.seqs) decode &= s.q_len == 1;
  // Never in the first forward: it makes the backend's fixed tables resident, which a capture cannot do.
  const bool graph = graphable_ && decode && forwards_++ > 0;
  const uint64_t key = static_cast<uint64_t>(T);
  // Where the logits go is the caller's choice (engine/token_chooser.h); this only carries it out.
  auto deliver = [&]() -> Status {
    if (sample != nullptr) B.sample_rows(out, sample, n, greedy->data());
    else if (greedy != nullptr && comm_ != nullptr) return vocab_parallel_greedy(out, n, greedy);
    else if (greedy != nullptr) B.argmax_rows(out, greedy->data());
    else if (comm_ != nullptr) return gather_logits(out, n, logits);
    else B.copy_to_host(out, logits->data());
    return Status();
  };
  if (graph && B.replay(key)) return deliver();
  if (graph) B.begin_capture();
  KEEL_RETURN_IF_ERROR(embed(tokens));
  KEEL_RETURN_IF_ERROR(run_layers(batch.meta, nullptr));
  if (n > 0) head(batch.logit_rows);
  if (graph) {
    KEEL_RETURN_IF_ERROR(B.end_capture(key));
    if (!B.replay(key)) return internal_error("forward: graph for {} tokens was captured but cannot replay", T);
  }
  if (n == 0) return Status();
  return deliver();
}

// One pipeline stage's part of a forward (docs/DISTRIBUTED.md, "Pipeline parallelism"). Micro-batch by
// micro-batch, in order: the hidden states come from the embedding (stage 0) or from the stage before, go
// through this stage's layers, and on to the next stage; the last stage computes the micro-batch's logits
// instead. send returns once the data is handed off, so a stage starts micro-batch i+1 while the next one runs
// micro-batch i. Once every micro-batch is through, the last stage broadcasts the logits to all stages.
Status Model::forward_pipelined(const Batch& batch, std::vector<float>* logits) {
  backend::Backend& B = *backend_;
  const int stage = pipe_->rank(), last = pipe_->size() - 1;
  const size_t hidden = static_cast<size_t>(local_.hidden_size), vocab = static_cast<size_t>(config_.vocab_size);
  const int count = options_.micro_batches > 0 ? options_.micro_batches : pipe_->size();
  for (const MicroBatch& mb : split_micro_batches(batch, count)) {
    const Batch& b = mb.batch;
    const size_t T = b.tokens.size();
    const std::vector<int32_t>& tokens = local_tokens(b.tokens);
    B.begin_forward(b.meta, tokens, b.logit_rows);
    Tensor x = ws_.x.row_slice(0, static_cast<int64_t>(T));
    if (stage == 0) {
      KEEL_RETURN_IF_ERROR(embed(tokens));
    } else {
      KEEL_RETURN_IF_ERROR(pipe_->recv(pipe_buf_.data(), T * hidden, stage - 1));
      B.copy_from_host(pipe_buf_.data(), x);
    }
    KEEL_RETURN_IF_ERROR(run_layers(b.meta, &mb.rope_len));
    if (stage < last) {
      // A device tensor-parallel group's all-reduces are queued on the stream: checked before x leaves.
      if (comm_ != nullptr) KEEL_RETURN_IF_ERROR(comm_->synchronize());
      B.copy_to_host(x, pipe_buf_.data());
      KEEL_RETURN_IF_ERROR(pipe_->send(pipe_buf_.data(), T * hidden, stage + 1));
      continue;
    }
    const int n = static_cast<int>(b.logit_rows.size());
    if (n == 0) continue;
    head(b.logit_rows);
    Tensor out = ws_.logits.row_slice(0, n);
    if (comm_ != nullptr) {
      KEEL_RETURN_IF_ERROR(gather_logits(out, n, &pipe_logits_));
      for (int i = 0; i < n; i++)
        std::copy_n(pipe_logits_.data() + i * vocab, vocab, logits->data() + mb.logit_index[i] * vocab);
      continue;
    }
    // Straight into place, a run of consecutive rows at a time: one run when the logit rows ascend (the
    // engine's do).
    for (int i = 0; i < n;) {
      int j = i + 1;
      while (j < n && mb.logit_index[j] == mb.logit_index[j - 1] + 1) j++;
      B.copy_to_host(out.row_slice(i, j - i), logits->data() + mb.logit_index[i] * vocab);
      i = j;
    }
  }
  if (logits->empty()) return Status();
  return pipe_->broadcast(logits->data(), logits->size() * sizeof(float), last);
}

}  // namespace keel::model
