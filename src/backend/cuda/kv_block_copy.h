// Prefix cache tiers (host RAM, SSD): one KV block of every layer to or from host memory, laid out as ops.h says
// (per layer: K then V). The copies run on their own stream through pinned staging slots, ordered against the
// compute stream by events, never by synchronizing it: an upload returns once its bytes are staged, and the next
// kernels on the compute stream wait for it on the device; a download waits only for the kernels queued before it
// and for its own copy. Pinned staging also lets the DMA engine read and write host memory directly (pageable
// memory goes through the driver's bounce buffer in small pieces).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "backend/cuda/device_context.h"
#include "backend/cuda/kv_cache.h"

namespace keel::backend::cuda {

class KvBlockCopier {
 public:
  KvBlockCopier(const DeviceContext& ctx, const KvCache& kv) : ctx_(ctx), kv_(kv) {}
  KvBlockCopier(const KvBlockCopier&) = delete;
  KvBlockCopier& operator=(const KvBlockCopier&) = delete;
  ~KvBlockCopier();

  void to_host(int block, void* dst);
  void from_host(const void* src, int block);

 private:
  struct Slot {
    uint8_t* host = nullptr;  // block_bytes_ of pinned memory, inside pinned_
    cudaEvent_t done = nullptr;
  };
  // Uploads of one admission's run of blocks overlap: staging block i + 1 while block i crosses the bus.
  static constexpr int kSlots = 8;

  // The next slot of the ring, once its last copy has left it; the stream and slots are made on the first copy
  // (the first eviction) and kept: host memory, so not counted in allocations(), and bounded: kSlots blocks.
  Slot& next();
  void init();

  const DeviceContext& ctx_;
  const KvCache& kv_;
  int device_ = 0;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t compute_done_ = nullptr;
  uint8_t* pinned_ = nullptr;
  size_t block_bytes_ = 0;
  Slot slots_[kSlots];
  int next_slot_ = 0;
};

}  // namespace keel::backend::cuda
