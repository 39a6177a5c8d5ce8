#include "backend/cuda/elementwise_ops.h"

#include "backend/cuda/dtype_dispatch.cuh"
#include "backend/cuda/elementwise_kernels.cuh"
#include "backend/cuda/norm_kernels.cuh"
#include "backend/cuda/row_copy_kernels.cuh"

namespace keel::backend::cuda {

namespace {

// A few long rows (decode: the residual stream's norms) take rms_norm_row_kernel, a block per row with the
// row in registers; more rows, or rows it cannot hold, the looping kernels.
bool norm_rows_fit(const Tensor& x, const Tensor* delta) {
  const auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  return x.rows <= 64 && x.cols >= 2048 && x.cols % 4 == 0 && x.cols <= 4 * kNormVecs * kNormThreads &&
         aligned(x.data) && (delta == nullptr || aligned(delta->data));
}
// The looping kernels: a few long rows get more threads each, so one row is not a serial chain of loads.
int norm_threads(const Tensor& x) { return x.rows <= 64 && x.cols >= 2048 ? 1024 : 256; }

}  // namespace

void ElementwiseOps::embed(const Tensor& table, int n, float scale, Tensor& out) {
  dispatch(table.dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    ctx_.launch(embed_kernel<T>, n, 1024, 0, static_cast<const T*>(table.data), batch_.tokens(), table.cols, scale,
                static_cast<float*>(out.data));
  });
}

void ElementwiseOps::rms_norm(const Tensor& x, const Tensor& w, float eps, bool add_one, Tensor& out) {
  dispatch(out.dtype, [&](auto* out_tag) {
    using TO = std::remove_pointer_t<decltype(out_tag)>;
    dispatch(w.dtype, [&](auto* w_tag) {
      using TW = std::remove_pointer_t<decltype(w_tag)>;
      if (norm_rows_fit(x, nullptr)) {
        ctx_.launch(rms_norm_row_kernel<TO, TW>, static_cast<unsigned>(x.rows), kNormThreads, 0,
                    static_cast<float*>(x.data), static_cast<const float*>(nullptr), static_cast<const TW*>(w.data),
                    eps, add_one, static_cast<int>(x.cols), static_cast<TO*>(out.data));
        return;
      }
      ctx_.launch(rms_norm_kernel<TO, TW>, static_cast<unsigned>(x.rows), norm_threads(x), 0,
                  static_cast<const float*>(x.data), static_cast<const TW*>(w.data), eps, add_one, x.cols,
                  static_cast<TO*>(out.data));
    });
  });
}

void ElementwiseOps::add(const Tensor& a, const Tensor& b, Tensor& out) {
  const int64_t n = a.numel();
  ctx_.launch(add_kernel, blocks_for(n, 256), 256, 0, static_cast<const float*>(a.data),
              static_cast<const float*>(b.data), static_cast<float*>(out.data), n);
}

void ElementwiseOps::add_rms_norm(Tensor& x, const Tensor& delta, const Tensor& w, float eps, bool add_one,
                                  Tensor& out) {
  dispatch(out.dtype, [&](auto* out_tag) {
    using TO = std::remove_pointer_t<decltype(out_tag)>;
    dispatch(w.dtype, [&](auto* w_tag) {
      using TW = std::remove_pointer_t<decltype(w_tag)>;
      if (norm_rows_fit(x, &delta)) {
        ctx_.launch(rms_norm_row_kernel<TO, TW>, static_cast<unsigned>(x.rows), kNormThreads, 0,
                    static_cast<float*>(x.data), static_cast<const float*>(delta.data), static_cast<const TW*>(w.data),
                    eps, add_one, static_cast<int>(x.cols), static_cast<TO*>(out.data));
        return;
      }
      ctx_.launch(add_rms_norm_kernel<TO, TW>, static_cast<unsigned>(x.rows), norm_threads(x), 0,
                  static_cast<float*>(x.data), static_cast<const float*>(delta.data), static_cast<const TW*>(w.data),
                  eps, add_one, x.cols, static_cast<TO*>(out.data));
    });
  });
}

void ElementwiseOps::glu(const Tensor& gate, const Tensor& up, GluActivation act, Tensor& out) {
  const int64_t n = gate.numel();
  dispatch(out.dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    ctx_.launch(glu_kernel<T>, blocks_for(n, 256), 256, 0, static_cast<const float*>(gate.data),
                static_cast<const float*>(up.data), n, act == GluActivation::kGeluTanh, static_cast<T*>(out.data));
  });
}

void ElementwiseOps::softcap(Tensor& x, float cap) {
  ctx_.launch(softcap_kernel, blocks_for(x.numel(), 256), 256, 0, static_cast<float*>(x.data), x.numel(), cap);
}

void ElementwiseOps::gather_rows(const Tensor& x, int rows, Tensor& out) {
  if (rows == 0) return;
  dispatch(x.dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    ctx_.launch(gather_rows_kernel<T>, static_cast<unsigned>(rows), 1024, 0, static_cast<const T*>(x.data),
                batch_.logit_rows(), x.cols, static_cast<T*>(out.data));
  });
}

}  // namespace keel::backend::cuda
