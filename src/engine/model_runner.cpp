#include "engine/model_runner.h"

#include <algorithm>

namespace keel::engine {

namespace {

// Tokens [begin, end) of a sequence as the next slice of `batch`.
void append_slice(model::Batch& batch, const std::vector<int32_t>& tokens, const kv::BlockTable& table, int begin,
                  int end, int state_slot) {
  backend::SeqSlice slice;
  slice.q_start = static_cast<int32_t>(batch.tokens.size());
  slice.q_len = end - begin;
  slice.kv_len = end;
  slice.block_table = table.blocks();
  slice.state_slot = state_slot;
  for (int p = begin; p < end; p++) {
    batch.tokens.push_back(tokens[p]);
    batch.meta.positions.push_back(p);
    batch.meta.slot_mapping.push_back(table.slot(p));
  }
  batch.meta.seqs.push_back(std::move(slice));
}

}  // namespace

Status ModelRunner::step(const std::vector<Chunk>& chunks, std::span<const ChoiceRow> rows,
                         std::vector<Choice>* out, std::span<const int> prompt_top,
                         std::vector<ChunkPromptLogprobs>* prompt_out) {
  batch_.tokens.clear();
  batch_.meta.positions.clear();
  batch_.meta.slot_mapping.clear();
  batch_.meta.seqs.clear();
  batch_.logit_rows.clear();
  sample_rows_.clear();
  prompt_rows_.clear();
  if (prompt_out != nullptr) prompt_out->clear();
  for (size_t ci = 0; ci < chunks.size(); ci++) {
    const Chunk& c = chunks[ci];
    const int32_t slice_start = static_cast<int32_t>(batch_.tokens.size());
    append_slice(batch_, c.seq->tokens, c.seq->table, c.begin, c.end, c.seq->state_slot);
    // Positions before the prompt's last predict prompt tokens; their rows precede the sampling row (ascending).
    const int predicting = std::min(c.end, c.seq->prompt_len - 1);
    if (!prompt_top.empty() && prompt_top[ci] >= 0 && prompt_out != nullptr && c.begin < predicting) {
      prompt_out->push_back(ChunkPromptLogprobs{ci, c.begin, {}});
      for (int p = c.begin; p < predicting; p++) {
        prompt_rows_.push_back(batch_.logit_rows.size());
        batch_.logit_rows.push_back(slice_start + (p - c.begin));
      }
    }
    if (c.samples()) {
      sample_rows_.push_back(batch_.logit_rows.size());
      batch_.logit_rows.push_back(static_cast<int32_t>(batch_.tokens.size() - 1));
    }
  }
  if (rows.size() != sample_rows_.size())
    return internal_error("ModelRunner::step: {} choice rows for {} sampling chunks", rows.size(),
                          sample_rows_.size());
  // Prompt logprobs need those rows' logits on the host: the whole step is chosen there.
  const ChoiceSite site = !prompt_rows_.empty()
                              ? ChoiceSite::kHost
                              : TokenChooser::site(rows, model_->greedy_on_device(), model_->sample_on_device());
  draws_.clear();
  if (site == ChoiceSite::kDeviceSample)
    for (const ChoiceRow& r : rows) draws_.push_back(TokenChooser::draw_params(r));

  // A masked row is chosen on the host; its mask needs only the tokens generated so far, so it is filled while
  // the forward runs.
  rows_.assign(rows.begin(), rows.end());
  const bool masked = std::any_of(rows_.begin(), rows_.end(), [](const ChoiceRow& r) { return r.mask != nullptr; });
  const int vocab = model_->config().vocab_size;
  if (masked) masks_.start(rows_, vocab);

  const uint64_t start = env_->now_micros();
  const bool greedy = site == ChoiceSite::kDeviceGreedy;
  Status s = leader_ != nullptr ? leader_->forward(batch_, greedy) : Status();
  if (s.ok()) {
    s = greedy                              ? model_->forward_greedy(batch_, &tokens_)
        : site == ChoiceSite::kDeviceSample ? model_->forward_sample(batch_, draws_, &tokens_)
                                            : model_->forward(batch_, &logits_);
  }
  forward_seconds_ = static_cast<double>(env_->now_micros() - start) * 1e-6;
  if (masked) {
    masks_.wait();
    for (size_t i = 0; i < rows_.size(); i++) rows_[i].mask_bits = masks_.bits(i);
  }
  KEEL_RETURN_IF_ERROR(s);

  out->resize(rows.size());
  if (!prompt_rows_.empty()) {
    size_t row = 0;
    for (ChunkPromptLogprobs& cp : *prompt_out) {
      const Chunk& c = chunks[cp.chunk];
      const int predicting = std::min(c.end, c.seq->prompt_len - 1);
      for (int p = cp.first; p < predicting; p++, row++) {
        PromptLogprob entry;
        chooser_.logprobs(logits_.data() + prompt_rows_[row] * static_cast<size_t>(vocab), vocab,
                          c.seq->tokens[p + 1], prompt_top[cp.chunk], &entry.chosen, &entry.top);
        cp.entries.push_back(std::move(entry));
      }
    }
  }
  for (size_t i = 0; i < rows.size(); i++) {
    if (site == ChoiceSite::kHost) {
      (*out)[i] = chooser_.choose(logits_.data() + sample_rows_[i] * static_cast<size_t>(vocab), vocab, rows_[i]);
    } else {
      (*out)[i] = Choice();
      (*out)[i].token = tokens_[i];
    }
  }
  return Status();
}

Result<std::vector<float>> all_logits(model::Model& model, const std::vector<int32_t>& tokens, StepLeader* leader) {
  if (tokens.empty()) return invalid_argument("no tokens given");
  const auto& layout = model.kv_layout();
  const size_t capacity = static_cast<size_t>(layout.num_blocks) * layout.block_size;
  if (tokens.size() > capacity)
    return invalid_argument("{} tokens exceed the KV pool of {} tokens ({} blocks of {})", tokens.size(), capacity,
                            layout.num_blocks, layout.block_size);
  kv::BlockPool pool(layout.num_blocks, layout.block_size);
  kv::BlockTable table(layout.block_size);
  std::vector<float> all, chunk;
  for (int done = 0; done < static_cast<int>(tokens.size());) {
    const int end = std::min<int>(static_cast<int>(tokens.size()), done + model.max_batch_tokens());
    KEEL_RETURN_IF_ERROR(table.append(pool, end - done));
    model::Batch batch;
    append_slice(batch, tokens, table, done, end, /*state_slot=*/0);  // the pool's first slot, for a hybrid model
    for (int i = 0; i < end - done; i++) batch.logit_rows.push_back(i);
    if (leader != nullptr) KEEL_RETURN_IF_ERROR(leader->forward(batch, false));
    KEEL_RETURN_IF_ERROR(model.forward(batch, &chunk));
    all.insert(all.end(), chunk.begin(), chunk.end());
    done = end;
  }
  table.release_all(pool);
  return all;
}

}  // namespace keel::engine
