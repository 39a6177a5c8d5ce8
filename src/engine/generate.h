// Single-sequence generation on a loaded model: chunked prefill into paged KV, then one token per step.
// The server's scheduler batches many sequences; this is the path of `keel generate` and `keel run`.
#pragma once

#include <functional>
#include <vector>

#include "engine/sampler.h"
#include "kv/block_pool.h"
#include "model/model.h"

namespace keel::engine {

class StepLeader;

struct GenerateOptions {
  int max_tokens = 16;
  SamplingParams sampling;
  std::vector<int32_t> stop_token_ids;  // generation ends after emitting one of these
  // Rank 0 of a tensor/pipeline-parallel group: each forward's plan goes to the other ranks first (engine/follower.h).
  StepLeader* leader = nullptr;
};

// Called with each new token; return false to stop early.
using TokenCallback = std::function<bool(int32_t)>;

// Plain greedy sampling (temperature 0, no penalties) takes each step's argmax on the device
// (Model::forward_greedy), as the engine does; otherwise the Sampler draws from the step's logits.
Result<std::vector<int32_t>> generate(model::Model& model, const std::vector<int32_t>& prompt,
                                      const GenerateOptions& options, const TokenCallback& on_token = nullptr);

// Appends tokens [begin, end) of `seq` to `table` (taking blocks from `pool`) and builds the batch that runs
// them; logits for every row or only the last.
Result<model::Batch> chunk_batch(kv::BlockPool& pool, kv::BlockTable& table, const std::vector<int32_t>& seq,
                                 int begin, int end, bool all_logits);

// The logits of every position of one sequence, [prompt.size(), vocab], computed in chunks. `leader`: as in
// GenerateOptions.
Result<std::vector<float>> all_logits(model::Model& model, const std::vector<int32_t>& tokens,
                                      StepLeader* leader = nullptr);

}  // namespace keel::engine
