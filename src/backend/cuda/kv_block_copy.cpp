#include "backend/cuda/kv_block_copy.h"

#include <cstring>

namespace keel::backend::cuda {

void KvBlockCopier::to_host(int block, void* dst) {
  Slot& slot = next();
  // After every kernel queued so far (the block's last writer), on the copy stream.
  KEEL_CUDA_CHECK(cudaEventRecord(compute_done_, ctx_.stream));
  KEEL_CUDA_CHECK(cudaStreamWaitEvent(stream_, compute_done_, 0));
  const size_t n = kv_.block_bytes_per_tensor();
  for (int l = 0; l < kv_.layout.num_layers; l++) {
    KEEL_CUDA_CHECK(cudaMemcpyAsync(slot.host + 2 * l * n, static_cast<const uint8_t*>(kv_.k[l]) + block * n, n,
                                    cudaMemcpyDeviceToHost, stream_));
    KEEL_CUDA_CHECK(cudaMemcpyAsync(slot.host + (2 * l + 1) * n, static_cast<const uint8_t*>(kv_.v[l]) + block * n,
                                    n, cudaMemcpyDeviceToHost, stream_));
  }
  KEEL_CUDA_CHECK(cudaEventRecord(slot.done, stream_));
  KEEL_CUDA_CHECK(cudaEventSynchronize(slot.done));
  std::memcpy(dst, slot.host, block_bytes_);
}

void KvBlockCopier::from_host(const void* src, int block) {
  Slot& slot = next();  // waits until the slot's previous copy has left it
  std::memcpy(slot.host, src, block_bytes_);
  // Kernels queued before this upload may still read the block's old bytes (an evicted block being reused).
  KEEL_CUDA_CHECK(cudaEventRecord(compute_done_, ctx_.stream));
  KEEL_CUDA_CHECK(cudaStreamWaitEvent(stream_, compute_done_, 0));
  const size_t n = kv_.block_bytes_per_tensor();
  for (int l = 0; l < kv_.layout.num_layers; l++) {
    KEEL_CUDA_CHECK(cudaMemcpyAsync(static_cast<uint8_t*>(kv_.k[l]) + block * n, slot.host + 2 * l * n, n,
                                    cudaMemcpyHostToDevice, stream_));
    KEEL_CUDA_CHECK(cudaMemcpyAsync(static_cast<uint8_t*>(kv_.v[l]) + block * n, slot.host + (2 * l + 1) * n, n,
                                    cudaMemcpyHostToDevice, stream_));
  }
  KEEL_CUDA_CHECK(cudaEventRecord(slot.done, stream_));
  // Everything queued on the compute stream from now on sees the block.
  KEEL_CUDA_CHECK(cudaStreamWaitEvent(ctx_.stream, slot.done, 0));
}

KvBlockCopier::Slot& KvBlockCopier::next() {
  if (stream_ == nullptr) init();
  Slot& s = slots_[next_slot_];
  next_slot_ = (next_slot_ + 1) % kSlots;
  KEEL_CUDA_CHECK(cudaEventSynchronize(s.done));  // its last copy has left the slot
  return s;
}

void KvBlockCopier::init() {
  device_ = ctx_.device;
  block_bytes_ = 2 * kv_.block_bytes_per_tensor() * kv_.layout.num_layers;
  KEEL_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  KEEL_CUDA_CHECK(cudaEventCreateWithFlags(&compute_done_, cudaEventDisableTiming));
  KEEL_CUDA_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&pinned_), kSlots * block_bytes_, cudaHostAllocDefault));
  for (int i = 0; i < kSlots; i++) {
    slots_[i].host = pinned_ + i * block_bytes_;
    KEEL_CUDA_CHECK(cudaEventCreateWithFlags(&slots_[i].done, cudaEventDisableTiming));
    KEEL_CUDA_CHECK(cudaEventRecord(slots_[i].done, stream_));  // "free" until first used
  }
}

KvBlockCopier::~KvBlockCopier() {
  if (stream_ == nullptr) return;
  cudaSetDevice(device_);
  cudaStreamSynchronize(stream_);
  for (auto& s : slots_) cudaEventDestroy(s.done);
  cudaEventDestroy(compute_done_);
  cudaFreeHost(pinned_);
  cudaStreamDestroy(stream_);
}

}  // namespace keel::backend::cuda
