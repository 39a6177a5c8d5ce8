// What every part of the CUDA backend works with: its device, the one compute stream all its work goes on, and
// the switches read once at start. The backend owns it; its parts hold a const reference, so the compute dtype
// set when the weights arrive (set_weights_dtype) is the one they see.
#pragma once

#include <cuda_runtime.h>

#include <cstring>
#include <cstdlib>
#include <utility>

#include "backend/cuda/cuda_check.h"
#include "base/dtype.h"
#ifdef __CUDACC__
#include "backend/cuda/launch.cuh"
#endif

namespace keel::backend::cuda {

// An on/off switch from the environment: on unless set to "0".
inline bool env_on(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr || std::strcmp(v, "0") != 0;
}

struct DeviceContext {
  int device = 0;
  cudaStream_t stream = nullptr;
  int sm_count = 132;
  // Activations, KV and (converted) weights: the checkpoint's dominant dtype.
  DType act = DType::kBF16;
  // Programmatic dependent launch of keel's kernels (set at start: sm_90 and KEEL_CUDA_PDL not 0).
  bool pdl = false;
  // Decode fusions, on unless KEEL_CUDA_FUSE=0 (A/B): q/k/v and gate+up·GLU stored by the GEMV itself, rope and
  // the KV write in one kernel, split-K attention joined by its last share instead of a combine kernel.
  bool fuse = env_on("KEEL_CUDA_FUSE");

#ifdef __CUDACC__
  // A kernel of a *_kernels.cuh header or gemv.cuh on the stream, with PDL unless KEEL_CUDA_PDL=0.
  template <typename... Params, typename... Args>
  void launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, Args&&... args) const {
    KEEL_CUDA_CHECK(launch_kernel(pdl, kernel, grid, block, smem, stream, std::forward<Args>(args)...));
  }
#endif

  void check_launch() const { KEEL_CUDA_CHECK(cudaGetLastError()); }
};

}  // namespace keel::backend::cuda
