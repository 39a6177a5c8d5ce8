// nvcc -O3 -std=c++17 -gencode=arch=compute_90,code=sm_90 -lineinfo -Isrc -o /tmp/gemv_v1 dev/kernels/gemv_v1.cu -lcublas
//
// The decode GEMV (src/backend/cuda/gemv.cuh, promoted from this experiment) against cuBLAS on the llama3-8b
// decode shapes: out[M,N] = x[M,K]·w[N,K]ᵀ, bf16 in, f32 out, M = 1..8. Both are a read of w: the figure of
// merit is GB/s of weight read against a streaming-read kernel measured in the same run.
//
// Usage: gemv_v1     prints, per shape and M: max |gemv - cublas| / max |cublas|, then µs and GB/s of each.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "../../src/backend/cuda/gemv.cuh"
#include "harness.cuh"

using harness::stream_read_kernel;
using harness::time_us;
using keel::backend::cuda::launch_gemv_bf16;

int main() {
  struct Shape {
    const char* name;
    int n, k;
  };
  const Shape shapes[] = {{"qkv", 6144, 4096}, {"o", 4096, 4096}, {"gate+up", 28672, 4096},
                          {"down", 4096, 14336}, {"lm_head", 128256, 4096}};
  // Several copies of each weight, cycled, so that L2 (50 MB) never holds the one being read.
  const size_t max_w = static_cast<size_t>(128256) * 4096;
  const int copies = 3;
  __nv_bfloat16 *w = nullptr, *x = nullptr;
  float *y0 = nullptr, *y1 = nullptr;
  CHECK(cudaMalloc(&w, max_w * copies * 2));
  CHECK(cudaMalloc(&x, 8 * 14336 * 2));
  CHECK(cudaMalloc(&y0, 8 * 128256 * 4));
  CHECK(cudaMalloc(&y1, 8 * 128256 * 4));
  {
    std::vector<__nv_bfloat16> h(max_w);
    std::mt19937 rng(1);
    std::normal_distribution<float> d(0, 1);
    for (auto& v : h) v = __float2bfloat16(d(rng));
    for (int c = 0; c < copies; c++) CHECK(cudaMemcpy(w + c * max_w, h.data(), max_w * 2, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(x, h.data(), 8 * 14336 * 2, cudaMemcpyHostToDevice));
  }
  unsigned* sink = nullptr;
  CHECK(cudaMalloc(&sink, 4));
  const float read_us = time_us([&] { stream_read_kernel<<<132 * 8, 512>>>(reinterpret_cast<uint4*>(w), max_w * copies / 8, sink); }, 10);
  const double bw = max_w * copies * 2.0 / (read_us * 1e-6);
  std::printf("streaming read: %.2f TB/s\n", bw / 1e12);

  cublasHandle_t h;
  cublasCreate(&h);
  for (const Shape& s : shapes) {
    for (int m : {1, 2, 4, 8}) {
      int which = 0;
      const size_t stride = max_w;
      auto gemv = [&] {
        launch_gemv_bf16(x, w + (which++ % copies) * stride, y0, m, s.n, s.k, 0);
      };
      auto cublas = [&] {
        const float alpha = 1, beta = 0;
        cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, s.n, m, s.k, &alpha, w + (which++ % copies) * stride, CUDA_R_16BF,
                     s.k, x, CUDA_R_16BF, s.k, &beta, y1, CUDA_R_32F, s.n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
      };
      which = 0;
      gemv();
      which = 0;
      cublas();
      CHECK(cudaDeviceSynchronize());
      std::vector<float> a(static_cast<size_t>(m) * s.n), b(a.size());
      CHECK(cudaMemcpy(a.data(), y0, a.size() * 4, cudaMemcpyDeviceToHost));
      CHECK(cudaMemcpy(b.data(), y1, b.size() * 4, cudaMemcpyDeviceToHost));
      double diff = 0, mag = 0;
      for (size_t i = 0; i < a.size(); i++) diff = std::max(diff, std::fabs(double(a[i]) - b[i])), mag = std::max(mag, std::fabs(double(b[i])));
      const float tg = time_us(gemv, 30), tc = time_us(cublas, 30);
      const double bytes = static_cast<double>(s.n) * s.k * 2;
      std::printf("%-8s n=%6d k=%5d m=%d  err %.1e  gemv %7.1f us %5.2f TB/s (%.2f)  cublas %7.1f us %5.2f TB/s (%.2f)\n",
                  s.name, s.n, s.k, m, diff / mag, tg, bytes / tg / 1e6, bytes / tg * 1e6 / bw, tc, bytes / tc / 1e6,
                  bytes / tc * 1e6 / bw);
    }
  }
  return 0;
}
