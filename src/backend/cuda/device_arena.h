// Every device buffer of one CUDA backend: allocated through here, counted (bytes_allocated, allocations: the
// counter stays flat after warm-up, which tests check), and freed together when the backend goes. Weights are
// carved from one block reserved up front, so loading a model is one allocation, not one per tensor.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "backend/cuda/cuda_check.h"
#include "base/status.h"

namespace keel::backend::cuda {

// A device array that grows (counted as an allocation) only when a batch outgrows it.
template <typename T>
struct DeviceArray {
  T* ptr = nullptr;
  size_t capacity = 0;  // elements
};

class DeviceArena {
 public:
  DeviceArena() = default;
  DeviceArena(const DeviceArena&) = delete;
  DeviceArena& operator=(const DeviceArena&) = delete;
  ~DeviceArena();

  // A new buffer of `bytes` (at least 256).
  Result<void*> alloc(size_t bytes);

  // The block weights are placed in (Backend::reserve_weights).
  Status reserve_weights(uint64_t bytes);
  // `bytes` for one weight: the next 256-byte-aligned piece of the reserved block where it fits, else a buffer
  // of its own.
  Result<void*> place_weight(size_t bytes);

  // Exact at start (reserve_forward); doubling if a batch ever outgrows it (counted, so tests catch it). A failed
  // allocation here is fatal: ops cannot return errors.
  template <typename T>
  void reserve(DeviceArray<T>& a, size_t n, bool exact = false) {
    if (n <= a.capacity && a.ptr != nullptr) return;
    const size_t cap = exact ? std::max<size_t>(n, 1) : std::max<size_t>(n * 2, 1024);
    a.ptr = static_cast<T*>(grow(cap * sizeof(T)));
    a.capacity = cap;
  }

  // n elements from the host into `a` (grown first if it must), queued on `stream`.
  template <typename T>
  void upload(DeviceArray<T>& a, const T* host, size_t n, cudaStream_t stream) {
    reserve(a, n);
    if (n > 0) KEEL_CUDA_CHECK(cudaMemcpyAsync(a.ptr, host, n * sizeof(T), cudaMemcpyHostToDevice, stream));
  }

  uint64_t bytes() const { return bytes_; }
  uint64_t allocations() const { return allocations_; }

 private:
  void* grow(size_t bytes);  // alloc, or abort with the reason

  std::vector<void*> buffers_;
  uint64_t bytes_ = 0, allocations_ = 0;
  uint8_t* weights_ = nullptr;
  size_t weights_size_ = 0, weights_used_ = 0;
};

}  // namespace keel::backend::cuda
