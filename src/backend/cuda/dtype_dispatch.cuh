// Host-side helpers of the CUDA backend's launchers: the C++ element type of a DType, and grid sizes.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "base/dtype.h"

namespace keel::backend::cuda {

// Calls f with a null pointer of the C++ element type of `d`.
template <typename F>
void dispatch(DType d, F&& f) {
  switch (d) {
    case DType::kF32: f(static_cast<float*>(nullptr)); return;
    case DType::kBF16: f(static_cast<__nv_bfloat16*>(nullptr)); return;
    case DType::kF16: f(static_cast<__half*>(nullptr)); return;
  }
}

inline int blocks_for(int64_t n, int threads) { return static_cast<int>((n + threads - 1) / threads); }

}  // namespace keel::backend::cuda
