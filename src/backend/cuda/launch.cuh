// Programmatic dependent launch (PDL, sm_90): a kernel launched with the attribute may start while the kernel
// before it on the stream is still running, once every block of that one has started (or called
// pdl_launch_dependents). It must call pdl_wait before it reads anything an earlier kernel wrote and before it
// writes anything: the wait returns when the kernels before it have finished and their writes are visible.
// What it may do before the wait is read what no kernel writes (weights), which is how the decode GEMV streams
// its first weights while the kernel before it drains. Every keel kernel launched this way calls pdl_wait in
// every thread before its first early return, so its completion implies its predecessors': the guarantee then
// holds transitively down the stream. On older GPUs, or without the attribute, both calls do nothing.
// Works inside CUDA graph capture (the edges become programmatic).
#pragma once

#include <cuda_runtime.h>

#include <utility>

namespace keel::backend::cuda {

__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Lets the next kernel's blocks be scheduled as soon as ours are all resident, so the next kernel's own
// pre-wait work overlaps this one. Called first in every keel kernel: it orders nothing, pdl_wait does.
__device__ __forceinline__ void pdl_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// kernel<<<grid, block, smem, stream>>>(args...), with the PDL attribute when `pdl`.
template <typename... Params, typename... Args>
cudaError_t launch_kernel(bool pdl, void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem,
                          cudaStream_t stream, Args&&... args) {
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  cudaLaunchAttribute attr{};
  attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr.val.programmaticStreamSerializationAllowed = 1;
  config.attrs = pdl ? &attr : nullptr;
  config.numAttrs = pdl ? 1 : 0;
  return cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
}

}  // namespace keel::backend::cuda
