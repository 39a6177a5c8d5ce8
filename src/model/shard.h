// Tensor-parallel sharding (Megatron style): which slice of every weight rank r of N holds, and the per-rank
// shape the forward pass runs with. docs/DISTRIBUTED.md has the full table; in short:
//   attention heads   rank r: q heads [r*H/N, (r+1)*H/N); KV heads [r*K/N, ...) when N <= K, else the single
//                     KV head r*K/N (replicated on N/K ranks) — it is the head every local q head reads
//   q/k/v, gate/up    split by output rows (column parallel), a view of the checkpoint
//   o, down           split by input columns (row parallel), copied at load; outputs all-reduced
//   embedding, head   split by vocab rows; each rank embeds its tokens (0 elsewhere) and all-reduces;
//                     logits are computed per slice and all-gathered
//   MoE experts       rank r runs experts [r*E/N, (r+1)*E/N) (expert parallel); router replicated
//   norms             replicated; biases of row-split layers (o, down) on rank 0 only
//
// Pipeline parallelism splits the model by layers first: stage s of P holds layers [s*L/P, (s+1)*L/P) (integer
// division, so stage sizes differ by at most one), the embedding on stage 0, the final norm and lm_head on the
// last stage (which binds the embedding too when the head is tied to it). Within a stage the tensor-parallel
// split above applies to that stage's layers.
#pragma once

#include "base/status.h"
#include "model/config.h"

namespace keel::model {

struct ShardSpec {
  int rank = 0;    // tensor-parallel rank within the stage
  int size = 1;    // tensor-parallel ranks per stage
  int stage = 0;   // pipeline stage
  int stages = 1;  // pipeline stages
  bool sharded() const { return size > 1; }
  bool pipelined() const { return stages > 1; }
};

// The ranges of the full model one rank holds.
struct ShardLayout {
  ShardSpec spec;
  int q_head0 = 0, q_heads = 0;    // attention heads
  int kv_head0 = 0, kv_heads = 0;  // KV heads
  int inter0 = 0, inter = 0;       // dense MLP intermediate columns
  int vocab0 = 0, vocab = 0;       // vocabulary rows
  int expert0 = 0, experts = 0;    // MoE experts
  int layer0 = 0, layers = 0;      // decoder layers of this pipeline stage
  bool embed = true;               // holds the token embedding (stage 0)
  bool head = true;                // holds the final norm and lm_head (the last stage)
  bool owns_expert(int e) const { return e >= expert0 && e < expert0 + experts; }
};

// Checks that `config` splits over spec.size ranks and spec.stages stages; the messages name the CLI flag.
Result<ShardLayout> shard_layout(const ModelConfig& config, ShardSpec spec);

// `config` with this rank's head counts, intermediate size and layers (num_layers and `layers` are the stage's,
// indexed from 0): the shape its forward pass runs at. vocab_size stays the full vocabulary (the logits the
// model returns are gathered).
ModelConfig local_config(const ModelConfig& config, const ShardLayout& layout);

}  // namespace keel::model
