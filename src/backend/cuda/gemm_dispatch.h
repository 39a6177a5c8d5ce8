// x·wᵀ for the CUDA backend: the decode GEMV (gemv.cuh) where it applies, cuBLAS (F32 accumulation, no TF32)
// elsewhere; adjacent weights (q|k|v, gate|up) as one product, with the split, biases or GLU stored by the GEMV
// itself (decode) or by an epilogue kernel (gemm_epilogue_kernels.cuh).
#pragma once

#include <cublas_v2.h>

#include "backend/cuda/device_arena.h"
#include "backend/cuda/device_context.h"
#include "backend/ops.h"

namespace keel::backend::cuda {

class GemmDispatcher {
 public:
  GemmDispatcher(const DeviceContext& ctx, DeviceArena& memory) : ctx_(ctx), memory_(memory) {}
  GemmDispatcher(const GemmDispatcher&) = delete;
  GemmDispatcher& operator=(const GemmDispatcher&) = delete;
  ~GemmDispatcher();

  // The cuBLAS handle on the compute stream, with a workspace of its own so that it never allocates.
  Status init();
  void reserve(const ForwardLimits& limits);

  void gemm(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out);
  // Backend::gemm_many and Backend::gemm_glu as one product; false when the weights are not adjacent in memory
  // (or the product outgrows the scratch), and the caller runs them one by one.
  bool gemm_many(const Tensor& x, const Backend::Projection* p, int n);
  bool gemm_glu(const Tensor& x, const Tensor& gate, const Tensor& up, GluActivation act, Tensor& out);

 private:
  static constexpr size_t kCublasWorkspace = 32ull << 20;

  // The decode GEMV takes x·wᵀ when x has few rows and both are bf16 (KEEL_CUDA_GEMV=0: cuBLAS always).
  bool gemv_fits(const Tensor& x, const Tensor& w) const;

  const DeviceContext& ctx_;
  DeviceArena& memory_;
  cublasHandle_t cublas_ = nullptr;
  // Decode-sized bf16 GEMMs (≤ kGemvPreferredRows rows) through gemv.cuh instead of cuBLAS; KEEL_CUDA_GEMV=0
  // turns it off (A/B).
  bool use_gemv_ = env_on("KEEL_CUDA_GEMV");
  // The output of a fused product before its split or GLU: max_tokens x max_fused_cols floats.
  DeviceArray<float> fused_product_;
};

}  // namespace keel::backend::cuda
