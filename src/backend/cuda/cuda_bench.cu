// The device's limits (HBM read bandwidth, bf16 GEMM throughput), measured for keel bench's ratios.
#include <cuda_runtime.h>

#include <algorithm>
#include <vector>

#include "backend/cuda/cuda_bench.h"
#include "base/dtype.h"
#include "backend/cuda/cuda_check.h"

namespace keel::backend {

// The roofline's denominator: a streaming read of n 16-byte vectors.
__global__ void stream_read_kernel(const int4* data, int64_t n, int* sink) {
  int acc = 0;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int4 v = __ldg(data + i);
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x7fffffff) *sink = acc;
}

Result<double> cuda_hbm_read_bandwidth(int device) {
  KEEL_CUDA_RETURN(cudaSetDevice(device), "set device");
  const size_t bytes = 4ull << 30;
  void* buf = nullptr;
  int* sink = nullptr;
  KEEL_CUDA_RETURN(cudaMalloc(&buf, bytes), "allocate the bandwidth buffer");
  KEEL_CUDA_RETURN(cudaMalloc(&sink, sizeof(int)), "allocate");
  KEEL_CUDA_RETURN(cudaMemset(buf, 1, bytes), "fill");
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, device);
  const int blocks = prop.multiProcessorCount * 8;
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  std::vector<float> ms;
  for (int rep = 0; rep < 12; rep++) {
    cudaEventRecord(a);
    stream_read_kernel<<<blocks, 512>>>(static_cast<const int4*>(buf), bytes / sizeof(int4), sink);
    cudaEventRecord(b);
    cudaEventSynchronize(b);
    float t = 0;
    cudaEventElapsedTime(&t, a, b);
    if (rep >= 2) ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  cudaFree(buf);
  cudaFree(sink);
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  KEEL_CUDA_RETURN(cudaGetLastError(), "bandwidth kernel");
  return bytes / (ms[ms.size() / 2] * 1e-3);
}

Result<double> cuda_gemm_flops(int device, int n) {
  KEEL_CUDA_RETURN(cudaSetDevice(device), "set device");
  const size_t elems = static_cast<size_t>(n) * n;
  void *a = nullptr, *b = nullptr, *c = nullptr;
  KEEL_CUDA_RETURN(cudaMalloc(&a, elems * 2), "allocate");
  KEEL_CUDA_RETURN(cudaMalloc(&b, elems * 2), "allocate");
  KEEL_CUDA_RETURN(cudaMalloc(&c, elems * 2), "allocate");
  // Random-looking bf16 data: zeros run faster than real data and would flatter the ceiling.
  std::vector<uint16_t> host(elems);
  uint64_t s = 88172645463325252ull;
  for (auto& v : host) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    v = float_to_bf16(static_cast<float>(s >> 40) / static_cast<float>(1 << 24) - 0.5f);
  }
  cudaMemcpy(a, host.data(), elems * 2, cudaMemcpyHostToDevice);
  cudaMemcpy(b, host.data(), elems * 2, cudaMemcpyHostToDevice);
  cublasHandle_t h;
  cublasCreate(&h);
  const float alpha = 1.0f, beta = 0.0f;
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  std::vector<float> ms;
  for (int rep = 0; rep < 10; rep++) {
    cudaEventRecord(e0);
    cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha, a, CUDA_R_16BF, n, b, CUDA_R_16BF, n, &beta, c,
                 CUDA_R_16BF, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    cudaEventRecord(e1);
    cudaEventSynchronize(e1);
    float t = 0;
    cudaEventElapsedTime(&t, e0, e1);
    if (rep >= 3) ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  cublasDestroy(h);
  cudaFree(a);
  cudaFree(b);
  cudaFree(c);
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  KEEL_CUDA_RETURN(cudaGetLastError(), "gemm");
  return 2.0 * n * n * static_cast<double>(n) / (ms[ms.size() / 2] * 1e-3);
}

}  // namespace keel::backend
