// One forward's batch on the device: positions, KV slots, each row's sequence, the sequences' spans and block
// tables, the token ids and the rows whose logits are kept. Uploaded once by begin_forward into buffers sized at
// start, then read by every kernel of the step; a captured graph reads the same buffers on replay.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/cuda/device_arena.h"
#include "backend/cuda/device_context.h"
#include "backend/cuda/seq_info.h"
#include "backend/ops.h"

namespace keel::backend::cuda {

class DeviceBatch {
 public:
  DeviceBatch(const DeviceContext& ctx, DeviceArena& memory) : ctx_(ctx), memory_(memory) {}

  void reserve(const ForwardLimits& limits);
  void upload(const BatchMeta& batch, const std::vector<int32_t>& tokens, const std::vector<int32_t>& logit_rows);

  const int32_t* positions() const { return positions_.ptr; }
  const int32_t* slots() const { return slots_.ptr; }
  const int32_t* row_seq() const { return row_seq_.ptr; }
  const SeqInfo* seqs() const { return seq_info_.ptr; }
  const int32_t* block_tables() const { return tables_.ptr; }
  const int32_t* tokens() const { return tokens_.ptr; }
  const int32_t* logit_rows() const { return gather_.ptr; }
  // The sequences as uploaded (the flash prefill's tile list is made from them).
  const std::vector<SeqInfo>& host_seqs() const { return seq_info_host_; }
  // Some sequence has more than one query row (a prompt or a chunk of one) / exactly one (a decode).
  bool has_prefill() const { return prefill_; }
  bool has_single_rows() const { return single_rows_; }

 private:
  const DeviceContext& ctx_;
  DeviceArena& memory_;
  DeviceArray<int32_t> positions_, slots_, row_seq_, tables_, tokens_, gather_;
  DeviceArray<SeqInfo> seq_info_;
  std::vector<int32_t> row_seq_host_, tables_host_;
  std::vector<SeqInfo> seq_info_host_;
  bool prefill_ = false, single_rows_ = false;
};

}  // namespace keel::backend::cuda
