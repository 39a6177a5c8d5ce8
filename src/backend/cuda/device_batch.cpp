#include "backend/cuda/device_batch.h"

namespace keel::backend::cuda {

void DeviceBatch::reserve(const ForwardLimits& limits) {
  memory_.reserve(positions_, limits.max_tokens, true);
  memory_.reserve(slots_, limits.max_tokens, true);
  memory_.reserve(row_seq_, limits.max_tokens, true);
  memory_.reserve(tokens_, limits.max_tokens, true);
  memory_.reserve(gather_, limits.max_tokens, true);
  memory_.reserve(seq_info_, limits.max_seqs, true);
  memory_.reserve(tables_, static_cast<size_t>(limits.max_block_table_entries), true);
}

void DeviceBatch::upload(const BatchMeta& batch, const std::vector<int32_t>& tokens,
                         const std::vector<int32_t>& logit_rows) {
  const int64_t t = batch.num_tokens();
  row_seq_host_.resize(t);
  seq_info_host_.clear();
  tables_host_.clear();
  for (size_t s = 0; s < batch.seqs.size(); s++) {
    const SeqSlice& sl = batch.seqs[s];
    seq_info_host_.push_back({sl.q_start, sl.q_len, sl.kv_len, static_cast<int32_t>(tables_host_.size())});
    tables_host_.insert(tables_host_.end(), sl.block_table.begin(), sl.block_table.end());
    for (int r = 0; r < sl.q_len; r++) row_seq_host_[sl.q_start + r] = static_cast<int32_t>(s);
  }
  memory_.upload(positions_, batch.positions.data(), t, ctx_.stream);
  memory_.upload(slots_, batch.slot_mapping.data(), t, ctx_.stream);
  memory_.upload(row_seq_, row_seq_host_.data(), t, ctx_.stream);
  memory_.upload(seq_info_, seq_info_host_.data(), seq_info_host_.size(), ctx_.stream);
  memory_.upload(tables_, tables_host_.data(), tables_host_.size(), ctx_.stream);
  memory_.upload(tokens_, tokens.data(), tokens.size(), ctx_.stream);
  memory_.upload(gather_, logit_rows.data(), logit_rows.size(), ctx_.stream);
  prefill_ = single_rows_ = false;
  for (const SeqSlice& s : batch.seqs) {
    prefill_ |= s.q_len > 1;
    single_rows_ |= s.q_len == 1;
  }
}

}  // namespace keel::backend::cuda
