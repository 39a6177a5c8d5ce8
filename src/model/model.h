// Model: a Hugging Face decoder-only model loaded onto a backend. One forward pass, written once against
// backend::Backend, serves every supported family; the family's quirks are fields of ModelConfig.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backend/ops.h"
#include "dist/communicator.h"
#include "env/env.h"
#include "format/safetensors.h"
#include "model/config.h"
#include "model/gated_deltanet.h"
#include "model/weights.h"

namespace keel::model {

// A flattened batch: the tokens of every sequence in this step, back to back.
struct Batch {
  std::vector<int32_t> tokens;
  backend::BatchMeta meta;          // positions, KV slots, per-sequence slices
  std::vector<int32_t> logit_rows;  // rows of `tokens` whose next-token logits are wanted
};

struct LoadOptions {
  int max_batch_tokens = 512;  // activation buffers are sized for this many tokens per forward
  // Logit rows one forward may ask for (0: max_batch_tokens). The logits buffers, [rows, vocab] each, are sized
  // for it: a serving engine samples one row per sequence, so max_num_seqs rows, not max_batch_tokens, suffice.
  int max_logit_rows = 0;
  int kv_blocks = 0;           // KV pool size in blocks (0: enough for max_position_embeddings... capped)
  int block_size = 16;
  // Tensor parallel: this process or thread is communicator->rank() of communicator->size(); it binds its
  // slice of the weights (shard.h) and joins the all-reduces of every forward. Null: the whole model.
  dist::Communicator* communicator = nullptr;
  // Pipeline parallel: this process or thread is stage pipeline->rank() of pipeline->size() (shard.h says which
  // layers each stage holds); it receives hidden states from the stage before and sends them to the next.
  // Independent of `communicator`: in a TP x PP grid each stage is a tensor-parallel group, and rank t of
  // every stage forms one pipeline. Null: one stage.
  dist::Communicator* pipeline = nullptr;
  int micro_batches = 0;  // pipelined forwards cut the batch into this many micro-batches (0: one per stage)
  // Hybrid models: sequences whose recurrent state the pool holds at once (0: the resolved max_logit_rows, one
  // per sequence a step can sample). Every running sequence holds a slot (SeqSlice::state_slot).
  int state_slots = 0;
};

class Model {
 public:
  static Result<std::unique_ptr<Model>> load(env::Env* env, const std::string& dir, backend::Backend* backend,
                                             const LoadOptions& options);

  // A model of `config`'s exact shape with random bf16 weights, for benchmarks.
  static Result<std::unique_ptr<Model>> synthetic(const ModelConfig& config, backend::Backend* backend,
                                                  const LoadOptions& options, uint64_t seed);

  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }
  const backend::KvLayout& kv_layout() const { return backend_->kv_layout(); }
  const backend::Backend& backend() const { return *backend_; }
  backend::Backend& backend() { return *backend_; }
  int max_batch_tokens() const { return options_.max_batch_tokens; }
  // Rows of logits one forward can return (LoadOptions::max_logit_rows, resolved).
  int max_logit_rows() const { return static_cast<int>(max_logit_rows_); }

  // Runs the batch; `logits` receives [batch.logit_rows.size(), vocab] float32, row-major. Pipelined, every
  // stage runs the same batch and every stage receives the logits.
  Status forward(const Batch& batch, std::vector<float>* logits);
  // The same forward, but only the greedy token of each logit row (argmax, the lowest id on ties): the logits
  // stay on the device, which saves copying [rows, vocab] floats off it every step. Tensor parallel, each rank
  // reduces its vocab slice and the ranks exchange one (value, id) pair per row (vocab_parallel.h), so every
  // rank of the group must call forward_greedy for the same step (run_follower does, by the step plan).
  // Only where greedy_on_device().
  Status forward_greedy(const Batch& batch, std::vector<int32_t>* tokens);
  // The same forward, but a token drawn from each logit row with params[i] (backend/sampling.h; temperature 0 is
  // greedy): the backend samples on the device and only the ids leave it. Only where sample_on_device().
  Status forward_sample(const Batch& batch, const std::vector<backend::SampleParams>& params,
                        std::vector<int32_t>* tokens);
  // Whether the forwards above can choose on this rank's device. A pipeline delivers its logits to the host, and a
  // tensor-parallel group draws nowhere but on the host from the gathered logits: the caller then runs forward
  // and chooses there (engine/token_chooser.h decides which).
  bool greedy_on_device() const { return pipe_ == nullptr; }
  bool sample_on_device() const { return pipe_ == nullptr && comm_ == nullptr; }

  // The part of the model this rank holds: its stage's layers [shard().layer0, shard().layer0 + shard().layers),
  // its tensor-parallel slice of them (all of it without communicators).
  const ShardLayout& shard() const { return shard_; }

  // KV bytes per token over all layers, in the backend's KV dtype.
  uint64_t kv_bytes_per_token() const;
  // Hybrid models: slots of the recurrent-state pool (0 for a model without linear-attention layers) and its
  // bytes.
  int recurrent_state_slots() const { return state_slots_; }
  uint64_t recurrent_state_bytes() const;

 private:
  Model() = default;
  Status init_shard();
  Status init_buffers();
  Status all_reduce(backend::Tensor& t);
  Status gather_logits(const backend::Tensor& local, int rows, std::vector<float>* logits);
  Status vocab_parallel_greedy(const backend::Tensor& local, int rows, std::vector<int32_t>* tokens);
  // forward, forward_greedy and forward_sample: one of logits / greedy is set; sample (with greedy, which then
  // receives the drawn tokens): one SampleParams per logit row.
  Status forward_impl(const Batch& batch, std::vector<float>* logits, std::vector<int32_t>* greedy,
                      const backend::SampleParams* sample = nullptr);
  Status check_batch(const Batch& batch) const;
  const std::vector<int32_t>& local_tokens(const std::vector<int32_t>& tokens);
  // The stages of forward: tokens into ws_.x, this stage's layers over ws_.x, the head into ws_.logits.
  Status embed(const std::vector<int32_t>& tokens);
  Status run_layers(const backend::BatchMeta& meta, const std::vector<int32_t>* rope_len);
  void head(const std::vector<int32_t>& logit_rows);
  Status forward_pipelined(const Batch& batch, std::vector<float>* logits);

  ModelConfig config_;
  ModelConfig local_;   // this rank's shape (local head counts, intermediate size); config_ unsharded
  ShardLayout shard_;
  dist::Communicator* comm_ = nullptr;  // null unsharded
  dist::Communicator* pipe_ = nullptr;  // null with one stage
  std::vector<float> comm_buf_, gather_buf_;  // host staging for collectives
  std::vector<float> row_max_, row_max_pairs_, row_max_gathered_;  // vocab-parallel greedy: values, packed pairs
  std::vector<float> pipe_buf_, pipe_logits_;  // host staging: hidden states; a micro-batch's gathered logits
  std::vector<int32_t> local_tokens_;         // token ids in this rank's vocab slice
  format::WeightFiles files_;
  ModelWeights weights_;
  backend::Backend* backend_ = nullptr;
  LoadOptions options_;

  backend::RopeTable rope_global_, rope_local_;  // fixed tables (all rope types but dynamic)
  bool dynamic_rope_ = false;
  bool graphable_ = false;  // decode steps may run as captured graphs
  int64_t max_table_entries_ = 0;
  int64_t max_logit_rows_ = 0;  // options_.max_logit_rows, resolved
  uint64_t forwards_ = 0;
  // Per layer of the stage: its index among the layers with KV (attention) or among the linear-attention layers
  // with recurrent state; -1 where it has none.
  std::vector<int> kv_layer_, state_layer_;
  int state_slots_ = 0;
  HybridWorkspace hybrid_ws_;

  struct Workspace {
    // F32: the residual stream x, q/k/v, GEMM outputs (o, gate, up, mlp), logits.
    // act_dtype: GEMM inputs (h, attn, act, logit_in).
    backend::Tensor x, h, q, k, v, attn, o, gate, up, act, mlp, logit_in, logits;
    backend::Tensor gathered;  // F32 [ranks * rows, vocab/ranks]: every rank's logits (device communicator)
  } ws_;
};

}  // namespace keel::model
