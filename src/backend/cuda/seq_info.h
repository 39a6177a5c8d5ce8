// Per-sequence metadata of a flattened batch, uploaded once per forward (device_batch.h) and read by the
// attention kernels. Plain data: host code and kernels share it.
#pragma once

#include <cstdint>

namespace keel::backend::cuda {

struct SeqInfo {
  int32_t q_start;
  int32_t q_len;
  int32_t kv_len;
  int32_t table_offset;  // into the flattened block tables
};

}  // namespace keel::backend::cuda
