#include "backend/cuda/kv_cache.h"

namespace keel::backend::cuda {

Status KvCache::alloc(const KvLayout& kv_layout, DType act, DeviceArena& memory) {
  if (kv_layout.dtype != act)
    return invalid_argument("cuda backend: KV dtype {} differs from the compute dtype {}", dtype_name(kv_layout.dtype),
                            dtype_name(act));
  layout = kv_layout;
  const size_t per = static_cast<size_t>(layout.num_blocks) * layout.block_size * layout.num_kv_heads *
                     layout.head_dim * dtype_size(layout.dtype);
  KEEL_ASSIGN_OR_RETURN(void* all, memory.alloc(2 * per * layout.num_layers));
  k.clear();
  v.clear();
  for (int l = 0; l < layout.num_layers; l++) {
    k.push_back(static_cast<uint8_t*>(all) + (2 * l) * per);
    v.push_back(static_cast<uint8_t*>(all) + (2 * l + 1) * per);
  }
  return Status();
}

}  // namespace keel::backend::cuda
