// ModelRunner: one step on the model. From the step's chunks it builds the flattened batch (tokens, positions, KV
// slots, block tables, a logit row for each chunk that samples), sends the plan to a tensor-parallel group's
// followers, runs the forward that the TokenChooser's site asks for and returns one choice per sampling chunk.
// The engine's step and keel bench's raw decode step are this one function.
#pragma once

#include <span>
#include <vector>

#include "engine/follower.h"
#include "engine/mask_filler.h"
#include "engine/scheduler.h"
#include "engine/token_chooser.h"
#include "env/env.h"
#include "model/model.h"

namespace keel::engine {

// The prompt logprobs one chunk computed (Request::prompt_logprobs): entries[i] is prompt token first + i + 1's
// logprob under the logits at position first + i.
struct ChunkPromptLogprobs {
  size_t chunk = 0;
  int first = 0;
  std::vector<PromptLogprob> entries;
};

class ModelRunner {
 public:
  // `leader`: rank 0 of a tensor/pipeline-parallel group (engine/follower.h), or null. Neither is owned.
  // `env` is the clock of forward_seconds (not owned, never null).
  ModelRunner(model::Model* model, StepLeader* leader, env::Env* env) : model_(model), leader_(leader), env_(env) {}

  // Runs `chunks` (their KV slots already reserved in each sequence's table). rows[i] says how the i-th chunk
  // that samples (Chunk::samples, in chunk order) chooses its token; out receives one Choice per row. A failure
  // of the plan's broadcast or of the forward leaves `out` unset.
  // prompt_top (empty, or one per chunk): k >= 0 asks for the logprobs of the prompt tokens the chunk's positions
  // predict, with the k most likely (those logits then come to the host); prompt_out receives them.
  Status step(const std::vector<Chunk>& chunks, std::span<const ChoiceRow> rows, std::vector<Choice>* out,
              std::span<const int> prompt_top = {}, std::vector<ChunkPromptLogprobs>* prompt_out = nullptr);

  // Of the last step: the forward's wall time (the device's work and the wait for its tokens) and its tokens.
  double forward_seconds() const { return forward_seconds_; }
  // Of the last step with grammar masks: the time filling them took (overlapped with the forward).
  double mask_seconds() const { return masks_.fill_seconds(); }
  size_t batch_tokens() const { return batch_.tokens.size(); }

 private:
  model::Model* model_;
  StepLeader* leader_;
  TokenChooser chooser_;
  MaskFiller masks_;
  std::vector<ChoiceRow> rows_;  // the step's rows, with the masks' bits once filled
  model::Batch batch_;
  std::vector<float> logits_;
  std::vector<int32_t> tokens_;
  std::vector<backend::SampleParams> draws_;
  std::vector<size_t> sample_rows_;  // for each sampling row, its index among the batch's logit rows
  std::vector<size_t> prompt_rows_;  // for each prompt-logprob position, its index among the batch's logit rows
  double forward_seconds_ = 0;
  env::Env* env_;
};

// The logits of every position of `tokens`, [tokens.size(), vocab], computed in chunks of the model's
// max_batch_tokens into a KV pool of its own (keel logits, the golden tests). `leader`: as for ModelRunner.
Result<std::vector<float>> all_logits(model::Model& model, const std::vector<int32_t>& tokens,
                                      StepLeader* leader = nullptr);

}  // namespace keel::engine
