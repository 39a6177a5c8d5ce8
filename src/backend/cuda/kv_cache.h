// The paged KV cache on the device, as backend/ops.h lays it out: per layer a K and a V tensor of
// [num_blocks * block_size, num_kv_heads * head_dim] in the compute dtype, every layer in one allocation.
#pragma once

#include <cstddef>
#include <vector>

#include "backend/cuda/device_arena.h"
#include "backend/ops.h"

namespace keel::backend::cuda {

struct KvCache {
  KvLayout layout;
  std::vector<void*> k, v;  // per layer

  // The cache for `layout`, whose dtype must be the compute dtype `act`.
  Status alloc(const KvLayout& kv_layout, DType act, DeviceArena& memory);
  // Bytes of one block's K (or V) in one layer.
  size_t block_bytes_per_tensor() const {
    return static_cast<size_t>(layout.block_size) * layout.num_kv_heads * layout.head_dim * dtype_size(layout.dtype);
  }
};

}  // namespace keel::backend::cuda
