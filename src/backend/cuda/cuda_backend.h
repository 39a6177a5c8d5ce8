// The CUDA backend's entry points. Only files in this directory include CUDA headers; everything else sees
// the Backend interface (backend/ops.h) and these two functions.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "backend/ops.h"

namespace keel::backend {

// GPUs visible to the CUDA runtime; 0 when there is no driver or no device (never fails).
int cuda_device_count();

// The memory of `device` as the driver reports it now, for the memory plan. name: "cuda:0 (NVIDIA H100 80GB HBM3)".
struct CudaMemoryInfo {
  std::string name;
  uint64_t total_bytes = 0;
  uint64_t free_bytes = 0;
};
Result<CudaMemoryInfo> cuda_memory_info(int device = 0);

// A backend on `device`: weights are uploaded (converted to the checkpoint's dominant dtype), activations
// and KV use that dtype, GEMMs go through cuBLAS with F32 accumulation.
Result<std::unique_ptr<Backend>> make_cuda_backend(int device = 0);

}  // namespace keel::backend
