// The harness every dev/kernels experiment shares: CHECK for CUDA calls, kernel timing with events, the
// comparison of a result against its reference, a streaming read (the roofline's denominator) and bf16 bits on
// the host. Header-only: each experiment still builds with the one nvcc line at its top.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#define CHECK(x)                                                                                     \
  do {                                                                                               \
    cudaError_t e_ = (x);                                                                            \
    if (e_ != cudaSuccess) {                                                                         \
      std::fprintf(stderr, "CUDA %s: %s (%s:%d)\n", #x, cudaGetErrorString(e_), __FILE__, __LINE__); \
      std::exit(1);                                                                                  \
    }                                                                                                \
  } while (0)

namespace harness {

// Mean µs per call of f over `reps` back-to-back calls on `stream`, after one warm-up call: one event pair
// around the whole loop, so launch gaps count.
template <typename F>
float time_us(F f, int reps, cudaStream_t stream = nullptr) {
  cudaEvent_t a, b;
  CHECK(cudaEventCreate(&a));
  CHECK(cudaEventCreate(&b));
  f();  // warm
  CHECK(cudaEventRecord(a, stream));
  for (int i = 0; i < reps; i++) f();
  CHECK(cudaEventRecord(b, stream));
  CHECK(cudaEventSynchronize(b));
  float ms = 0;
  CHECK(cudaEventElapsedTime(&ms, a, b));
  CHECK(cudaEventDestroy(a));
  CHECK(cudaEventDestroy(b));
  return ms * 1000.0f / reps;
}

// Median ms of one call of f on `stream`, each of `reps` calls timed alone after `warmup` untimed ones.
template <typename F>
float median_ms(F f, int warmup, int reps, cudaStream_t stream = nullptr) {
  cudaEvent_t a, b;
  CHECK(cudaEventCreate(&a));
  CHECK(cudaEventCreate(&b));
  for (int i = 0; i < warmup; i++) f();
  std::vector<float> ms;
  for (int i = 0; i < reps; i++) {
    CHECK(cudaEventRecord(a, stream));
    f();
    CHECK(cudaEventRecord(b, stream));
    CHECK(cudaEventSynchronize(b));
    float t = 0;
    CHECK(cudaEventElapsedTime(&t, a, b));
    ms.push_back(t);
  }
  CHECK(cudaEventDestroy(a));
  CHECK(cudaEventDestroy(b));
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// max |got - ref| / max |ref|: infinity when got holds a non-finite value.
inline double max_rel(const std::vector<float>& got, const std::vector<float>& ref) {
  double diff = 0, mag = 0;
  for (size_t i = 0; i < got.size(); i++) {
    if (!std::isfinite(got[i])) return INFINITY;
    diff = std::max(diff, std::fabs(double(got[i]) - ref[i]));
    mag = std::max(mag, std::fabs(double(ref[i])));
  }
  return diff / mag;
}

// sqrt(Σ (got - ref)² / Σ ref²) over the pairs added: infinity once any got is non-finite.
class RelRms {
 public:
  void add(double got, double ref) {
    if (!std::isfinite(got)) finite_ = false;
    num_ += (got - ref) * (got - ref);
    den_ += ref * ref;
  }
  // A value that is not compared (an element that must have been written) but must be finite.
  void require_finite(double got) {
    if (!std::isfinite(got)) finite_ = false;
  }
  double value() const { return finite_ ? std::sqrt(num_ / den_) : INFINITY; }

 private:
  double num_ = 0, den_ = 0;
  bool finite_ = true;
};

// The roofline's denominator: a streaming read of n 16-byte words.
__global__ void stream_read_kernel(const uint4* __restrict__ p, size_t n, unsigned* sink) {
  unsigned acc = 0;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const uint4 v = p[i];
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x12345678u) *sink = acc;
}

// bf16 bits from a float (round to nearest even) and back.
inline uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7fff + ((u >> 16) & 1);
  return static_cast<uint16_t>(u >> 16);
}
inline float from_bf16(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

}  // namespace harness
