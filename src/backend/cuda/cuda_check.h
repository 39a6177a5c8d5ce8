// CUDA/cuBLAS error handling shared by the backend's files.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "base/status.h"

namespace keel::backend {

inline Status cuda_status(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return Status();
  return internal_error("CUDA {}: {} ({})", what, cudaGetErrorString(err), static_cast<int>(err));
}

#define KEEL_CUDA_RETURN(expr, what) KEEL_RETURN_IF_ERROR(cuda_status((expr), (what)))

// Ops cannot return errors (the seam is void); a CUDA failure inside one is a broken device or a keel bug,
// so it is fatal with the reason rather than silently wrong.
// Logs the failure as one error record (base/log: the call, the library's reason, the source line — what `keel
// doctor` and a bug report need) and aborts. Defined in cuda_check.cpp, compiled as C++20 (base/log.h), which the
// .cu files that use these macros are not.
[[noreturn]] void fail_fatally(const char* what, const char* call, const char* reason, const char* file, int line);

#define KEEL_CUDA_CHECK(expr)                                                                               \
  do {                                                                                                      \
    cudaError_t e_ = (expr);                                                                                \
    if (e_ != cudaSuccess)                                                                                  \
      ::keel::backend::fail_fatally("CUDA call failed", #expr, cudaGetErrorString(e_), __FILE__, __LINE__); \
  } while (0)
#define KEEL_CUBLAS_CHECK(expr)                                                                                    \
  do {                                                                                                             \
    cublasStatus_t s_ = (expr);                                                                                    \
    if (s_ != CUBLAS_STATUS_SUCCESS)                                                                               \
      ::keel::backend::fail_fatally("cuBLAS call failed", #expr, cublasGetStatusString(s_), __FILE__, __LINE__); \
  } while (0)

}  // namespace keel::backend
