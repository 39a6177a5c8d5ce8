// Micro-batches for pipeline parallelism: one step's flattened batch cut into consecutive runs of token rows,
// so that stage s runs micro-batch i+1 while stage s+1 runs micro-batch i.
//
// A cut may fall inside a sequence (one long prefill chunk is pipelined too): the piece before the cut is that
// sequence's slice with the later rows dropped (its kv_len shortened by as many), the piece after it the rest.
// Each stage runs the pieces in order, so a later piece's attention finds the earlier piece's KV written.
#pragma once

#include <vector>

#include "model/model.h"

namespace keel::model {

struct MicroBatch {
  Batch batch;                       // rows [row0, row0 + batch.tokens.size()) of the step, q_start from 0
  int row0 = 0;
  std::vector<int32_t> logit_index;  // per batch.logit_rows entry: its row in the whole step's logits
  // Per batch.meta.seqs entry: the kv_len of the whole step's slice of that sequence. Dynamic NTK rope scales
  // by a sequence's length in the step, which a cut must not change.
  std::vector<int32_t> rope_len;
};

// `batch` cut into min(count, tokens) micro-batches of tokens*k/count .. tokens*(k+1)/count rows.
std::vector<MicroBatch> split_micro_batches(const Batch& batch, int count);

}  // namespace keel::model
