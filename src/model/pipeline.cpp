#include "model/pipeline.h"

#include <algorithm>

namespace keel::model {

std::vector<MicroBatch> split_micro_batches(const Batch& batch, int count) {
  const int T = static_cast<int>(batch.tokens.size());
  const int M = std::max(1, std::min(count, T));
  std::vector<MicroBatch> out(M);
  for (int k = 0; k < M; k++) {
    MicroBatch& mb = out[k];
    const int begin = static_cast<int>(static_cast<int64_t>(T) * k / M);
    const int end = static_cast<int>(static_cast<int64_t>(T) * (k + 1) / M);
    mb.row0 = begin;
    mb.batch.tokens.assign(batch.tokens.begin() + begin, batch.tokens.begin() + end);
    const backend::BatchMeta& meta = batch.meta;
    mb.batch.meta.positions.assign(meta.positions.begin() + begin, meta.positions.begin() + end);
    mb.batch.meta.slot_mapping.assign(meta.slot_mapping.begin() + begin, meta.slot_mapping.begin() + end);
    for (const backend::SeqSlice& s : meta.seqs) {
      const int lo = std::max(begin, s.q_start), hi = std::min(end, s.q_start + s.q_len);
      if (lo >= hi) continue;
      backend::SeqSlice piece;
      piece.q_start = lo - begin;
      piece.q_len = hi - lo;
      piece.kv_len = s.kv_len - (s.q_start + s.q_len - hi);  // the rows after the cut are not cached yet
      piece.block_table = s.block_table;
      mb.batch.meta.seqs.push_back(std::move(piece));
      mb.rope_len.push_back(s.kv_len);
    }
  }
  for (int j = 0; j < static_cast<int>(batch.logit_rows.size()); j++) {
    const int r = batch.logit_rows[j];
    // The micro-batch whose rows hold r: the last one starting at or before it.
    auto it = std::upper_bound(out.begin(), out.end(), r, [](int row, const MicroBatch& mb) { return row < mb.row0; });
    MicroBatch& mb = *std::prev(it);
    mb.batch.logit_rows.push_back(r - mb.row0);
    mb.logit_index.push_back(j);
  }
  return out;
}

}  // namespace keel::model
