#include "engine/generate.h"

#include <algorithm>

#include "engine/follower.h"
#include "kv/block_pool.h"

namespace keel::engine {

Result<model::Batch> chunk_batch(kv::BlockPool& pool, kv::BlockTable& table, const std::vector<int32_t>& seq,
                                 int begin, int end, bool all_logits) {
  KEEL_RETURN_IF_ERROR(table.append(pool, end - begin));
  model::Batch b;
  b.tokens.assign(seq.begin() + begin, seq.begin() + end);
  for (int p = begin; p < end; p++) {
    b.meta.positions.push_back(p);
    b.meta.slot_mapping.push_back(table.slot(p));
  }
  backend::SeqSlice s;
  s.q_start = 0;
  s.q_len = end - begin;
  s.kv_len = end;
  s.block_table = table.blocks();
  b.meta.seqs.push_back(std::move(s));
  if (all_logits) {
    for (int i = 0; i < end - begin; i++) b.logit_rows.push_back(i);
  } else {
    b.logit_rows.push_back(end - begin - 1);
  }
  return b;
}

namespace {

Status check_fits(const model::Model& model, size_t tokens) {
  const auto& layout = model.kv_layout();
  const size_t capacity = static_cast<size_t>(layout.num_blocks) * layout.block_size;
  if (tokens > capacity)
    return invalid_argument("{} tokens exceed the KV pool of {} tokens ({} blocks of {})", tokens, capacity,
                            layout.num_blocks, layout.block_size);
  return Status();
}

// The engine's criterion: the argmax is the whole sample, so only each row's argmax leaves the device (and under
// tensor parallelism only each rank's (value, id) pairs cross ranks).
bool plain_greedy(const SamplingParams& s) {
  return s.temperature == 0.0f && s.repetition_penalty == 1.0f && s.frequency_penalty == 0.0f &&
         s.presence_penalty == 0.0f;
}

}  // namespace

Result<std::vector<int32_t>> generate(model::Model& model, const std::vector<int32_t>& prompt,
                                      const GenerateOptions& options, const TokenCallback& on_token) {
  if (prompt.empty()) return invalid_argument("the prompt is empty");
  if (options.max_tokens < 0) return invalid_argument("max_tokens={} must be >= 0", options.max_tokens);
  KEEL_RETURN_IF_ERROR(options.sampling.validate());
  KEEL_RETURN_IF_ERROR(check_fits(model, prompt.size() + options.max_tokens));
  const int context = model.config().max_position_embeddings;
  if (static_cast<int>(prompt.size()) + options.max_tokens > context)
    return invalid_argument("prompt ({} tokens) + max_tokens ({}) exceeds the model's context of {} tokens",
                            prompt.size(), options.max_tokens, context);

  const auto& layout = model.kv_layout();
  kv::BlockPool pool(layout.num_blocks, layout.block_size);
  kv::BlockTable table(layout.block_size);
  Sampler sampler(options.sampling);
  std::vector<int32_t> seq = prompt, out;
  std::vector<float> logits;
  std::vector<int32_t> argmax;
  const int vocab = model.config().vocab_size;
  const bool greedy = plain_greedy(options.sampling);

  int done = 0;
  while (done < static_cast<int>(seq.size()) && static_cast<int>(out.size()) < options.max_tokens) {
    const int end = std::min<int>(static_cast<int>(seq.size()), done + model.max_batch_tokens());
    KEEL_ASSIGN_OR_RETURN(model::Batch batch, chunk_batch(pool, table, seq, done, end, false));
    if (options.leader != nullptr) KEEL_RETURN_IF_ERROR(options.leader->forward(batch, greedy));
    KEEL_RETURN_IF_ERROR(greedy ? model.forward_greedy(batch, &argmax) : model.forward(batch, &logits));
    done = end;
    if (done < static_cast<int>(seq.size())) continue;  // still prefilling
    const int32_t tok = greedy ? argmax[0] : sampler.sample(logits.data(), vocab, seq);
    out.push_back(tok);
    seq.push_back(tok);
    const bool stop = std::find(options.stop_token_ids.begin(), options.stop_token_ids.end(), tok) !=
                      options.stop_token_ids.end();
    if (on_token && !on_token(tok)) break;
    if (stop) break;
  }
  table.release_all(pool);
  return out;
}

Result<std::vector<float>> all_logits(model::Model& model, const std::vector<int32_t>& tokens, StepLeader* leader) {
  if (tokens.empty()) return invalid_argument("no tokens given");
  KEEL_RETURN_IF_ERROR(check_fits(model, tokens.size()));
  const auto& layout = model.kv_layout();
  kv::BlockPool pool(layout.num_blocks, layout.block_size);
  kv::BlockTable table(layout.block_size);
  std::vector<float> all, chunk;
  for (int done = 0; done < static_cast<int>(tokens.size());) {
    const int end = std::min<int>(static_cast<int>(tokens.size()), done + model.max_batch_tokens());
    KEEL_ASSIGN_OR_RETURN(model::Batch batch, chunk_batch(pool, table, tokens, done, end, true));
    if (leader != nullptr) KEEL_RETURN_IF_ERROR(leader->forward(batch, false));
    KEEL_RETURN_IF_ERROR(model.forward(batch, &chunk));
    all.insert(all.end(), chunk.begin(), chunk.end());
    done = end;
  }
  return all;
}

}  // namespace keel::engine
