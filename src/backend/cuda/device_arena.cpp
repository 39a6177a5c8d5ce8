#include "backend/cuda/device_arena.h"

#include "base/log.h"
#include <cstdlib>

namespace keel::backend::cuda {

DeviceArena::~DeviceArena() {
  for (void* p : buffers_) cudaFree(p);
}

Result<void*> DeviceArena::alloc(size_t bytes) {
  void* p = nullptr;
  KEEL_CUDA_RETURN(cudaMalloc(&p, std::max<size_t>(bytes, 256)), "allocate device memory");
  buffers_.push_back(p);
  bytes_ += bytes;
  allocations_++;
  return p;
}

Status DeviceArena::reserve_weights(uint64_t bytes) {
  KEEL_ASSIGN_OR_RETURN(void* block, alloc(bytes));
  weights_ = static_cast<uint8_t*>(block);
  weights_size_ = bytes;
  weights_used_ = 0;
  return Status();
}

Result<void*> DeviceArena::place_weight(size_t bytes) {
  const size_t offset = (weights_used_ + 255) / 256 * 256;
  if (weights_ != nullptr && offset + bytes <= weights_size_) {
    weights_used_ = offset + bytes;
    return static_cast<void*>(weights_ + offset);
  }
  return alloc(bytes);
}

void* DeviceArena::grow(size_t bytes) {
  auto p = alloc(bytes);
  if (!p.ok()) log::fatal("device arena cannot grow", {{"error", p.status().message()}});
  return *p;
}

}  // namespace keel::backend::cuda
