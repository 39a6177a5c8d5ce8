#include "backend/cuda/gemm_dispatch.h"

#include "backend/cuda/dtype_dispatch.cuh"
#include "backend/cuda/gemm_epilogue_kernels.cuh"
#include "backend/cuda/gemv.cuh"

namespace keel::backend::cuda {

namespace {

cudaDataType_t cuda_type(DType d) {
  switch (d) {
    case DType::kF32: return CUDA_R_32F;
    case DType::kF16: return CUDA_R_16F;
    case DType::kBF16: return CUDA_R_16BF;
  }
  return CUDA_R_32F;
}

const __nv_bfloat16* bf16_data(const Tensor& t) { return static_cast<const __nv_bfloat16*>(t.data); }

GemvLaunch gemv_launch(const DeviceContext& ctx) { return GemvLaunch{ctx.stream, ctx.pdl}; }

}  // namespace

GemmDispatcher::~GemmDispatcher() {
  if (cublas_) cublasDestroy(cublas_);
}

Status GemmDispatcher::init() {
  if (cublasCreate(&cublas_) != CUBLAS_STATUS_SUCCESS) return internal_error("cuBLAS: cannot create a handle");
  cublasSetStream(cublas_, ctx_.stream);
  // cuBLAS takes workspace from the pool on demand unless given one: give it one, so it never allocates.
  KEEL_ASSIGN_OR_RETURN(void* ws, memory_.alloc(kCublasWorkspace));
  cublasSetWorkspace(cublas_, ws, kCublasWorkspace);
  cublasSetMathMode(cublas_, CUBLAS_DEFAULT_MATH);  // no TF32: the F32 path must match the CPU oracle
  return Status();
}

void GemmDispatcher::reserve(const ForwardLimits& limits) {
  memory_.reserve(fused_product_, static_cast<size_t>(limits.max_tokens) * limits.max_fused_cols, true);
}

bool GemmDispatcher::gemv_fits(const Tensor& x, const Tensor& w) const {
  return use_gemv_ && x.rows <= kGemvPreferredRows && x.dtype == DType::kBF16 && w.dtype == DType::kBF16 &&
         x.cols == w.cols && gemv_applies(static_cast<int>(x.rows), static_cast<int>(w.cols), x.data, w.data);
}

void GemmDispatcher::gemm(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out) {
  const int m = static_cast<int>(x.rows), n = static_cast<int>(w.rows), k = static_cast<int>(w.cols);
  if (gemv_fits(x, w) && out.cols == n) {
    // The bias joins the GEMV's store when it has the operands' dtype (always, for weights bound here).
    const bool fuse_bias = bias != nullptr && bias->dtype == DType::kBF16;
    GemvOut o{static_cast<float*>(out.data), nullptr, nullptr, fuse_bias ? bf16_data(*bias) : nullptr,
              nullptr, nullptr, n, 0, 0};
    KEEL_CUDA_CHECK(launch_gemv(bf16_data(x), bf16_data(w), m, n, k, 0, o, gemv_launch(ctx_)));
    if (fuse_bias) return;
  } else {
    // Row-major out[M,N] = x[M,K] w[N,K]^T is column-major out^T[N,M] = w^T... : cuBLAS sees w as a K x N
    // column-major matrix (transposed to N x K) and x as K x M.
    const float alpha = 1.0f, beta = 0.0f;
    KEEL_CUBLAS_CHECK(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha, w.data, cuda_type(w.dtype), k,
                                   x.data, cuda_type(x.dtype), k, &beta, out.data, CUDA_R_32F, n,
                                   CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }
  if (bias != nullptr) {
    dispatch(bias->dtype, [&](auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      ctx_.launch(add_bias_kernel<T>, blocks_for(out.numel(), 256), 256, 0, static_cast<float*>(out.data),
                  static_cast<const T*>(bias->data), out.rows, out.cols);
    });
  }
}

// Adjacent weights [N1,K][N2,K]... are one [N1+N2+..., K] matrix: one GEMM, then a split with biases (decode:
// one GEMV that stores each column in its target directly).
bool GemmDispatcher::gemm_many(const Tensor& x, const Backend::Projection* p, int n) {
  bool adjacent = n <= 3 && fused_product_.ptr != nullptr;
  int64_t total = 0;
  for (int i = 0; i < n && adjacent; i++) {
    adjacent &= p[i].w->dtype == p[0].w->dtype && p[i].w->cols == p[0].w->cols &&
                p[i].out->dtype == DType::kF32 &&
                (i == 0 || p[i].w->data == static_cast<const uint8_t*>(p[i - 1].w->data) + p[i - 1].w->nbytes()) &&
                (p[i].bias == nullptr || p[i].bias->dtype == ctx_.act);
    total += p[i].w->rows;
  }
  if (!adjacent || x.rows * total > static_cast<int64_t>(fused_product_.capacity)) return false;
  Tensor fused_w{p[0].w->data, p[0].w->dtype, total, p[0].w->cols};
  if (ctx_.fuse && gemv_fits(x, fused_w)) {
    float* outs[3] = {};
    const __nv_bfloat16* biases[3] = {};
    int cols[3] = {};
    for (int i = 0; i < n; i++) {
      outs[i] = static_cast<float*>(p[i].out->data);
      biases[i] = p[i].bias != nullptr ? bf16_data(*p[i].bias) : nullptr;
      cols[i] = static_cast<int>(p[i].w->rows);
    }
    const GemvOut o{outs[0], outs[1], outs[2], biases[0], biases[1], biases[2], cols[0], cols[1], cols[2]};
    KEEL_CUDA_CHECK(launch_gemv(bf16_data(x), bf16_data(fused_w), static_cast<int>(x.rows), static_cast<int>(total),
                                static_cast<int>(fused_w.cols), 0, o, gemv_launch(ctx_)));
    return true;
  }
  Tensor out{fused_product_.ptr, DType::kF32, x.rows, total};
  gemm(x, fused_w, nullptr, out);
  SplitTarget t[3] = {};
  for (int i = 0; i < n; i++)
    t[i] = {static_cast<float*>(p[i].out->data), p[i].bias ? p[i].bias->data : nullptr, p[i].w->rows};
  const int64_t elems = x.rows * total;
  dispatch(ctx_.act, [&](auto* tag) {
    using TB = std::remove_pointer_t<decltype(tag)>;
    ctx_.launch(split_columns_kernel<TB>, blocks_for(elems, 256), 256, 0, fused_product_.ptr, x.rows, total, t[0], t[1],
                t[2]);
  });
  return true;
}

bool GemmDispatcher::gemm_glu(const Tensor& x, const Tensor& gate, const Tensor& up, GluActivation act,
                              Tensor& out) {
  const bool adjacent = gate.data != nullptr && up.data == static_cast<const uint8_t*>(gate.data) + gate.nbytes() &&
                        gate.rows == up.rows && x.rows * 2 * gate.rows <= static_cast<int64_t>(fused_product_.capacity);
  if (!adjacent) return false;
  Tensor fused_w{gate.data, gate.dtype, 2 * gate.rows, gate.cols};
  const bool gelu = act == GluActivation::kGeluTanh;
  if (ctx_.fuse && gemv_fits(x, fused_w) && out.dtype == DType::kBF16) {
    // Decode: one GEMV reads the gate and up rows of each output and stores act(gate)·up.
    const GemvGlu o{static_cast<__nv_bfloat16*>(out.data), static_cast<int>(gate.rows), gelu};
    KEEL_CUDA_CHECK(launch_gemv(bf16_data(x), bf16_data(fused_w), static_cast<int>(x.rows),
                                static_cast<int>(gate.rows), static_cast<int>(gate.cols), gate.rows, o,
                                gemv_launch(ctx_)));
    return true;
  }
  Tensor gate_up_out{fused_product_.ptr, DType::kF32, x.rows, 2 * gate.rows};
  gemm(x, fused_w, nullptr, gate_up_out);
  const int64_t n = x.rows * gate.rows;
  dispatch(out.dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    ctx_.launch(glu_fused_kernel<T>, blocks_for(n, 256), 256, 0, fused_product_.ptr, x.rows, gate.rows, gelu,
                static_cast<T*>(out.data));
  });
  return true;
}

}  // namespace keel::backend::cuda
