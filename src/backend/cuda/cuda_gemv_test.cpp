// The decode GEMV (gemv.cuh) against the CPU oracle. Inputs are rounded to bf16 on the host first, so both sides
// multiply the same numbers in float: what differs is summation order only (relative error ≤ 1e-5).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "backend/cpu/cpu_backend.h"
#include "backend/cuda/cuda_backend.h"

namespace keel::backend {
namespace {

float round_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7FFFu + ((u >> 16) & 1u);
  u &= 0xFFFF0000u;
  std::memcpy(&f, &u, 4);
  return f;
}

std::vector<float> random_bf16(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = round_bf16(d(rng));
  return v;
}

double rel_error(const std::vector<float>& got, const std::vector<float>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); i++) {
    if (!std::isfinite(got[i])) return INFINITY;
    num += std::pow(static_cast<double>(got[i]) - want[i], 2);
    den += std::pow(static_cast<double>(want[i]), 2);
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

// out = x·wᵀ + bias on both backends; the GPU holds x and w as bf16.
double gemm_error(int m, int n, int k, bool with_bias) {
  auto cpu = make_cpu_backend();
  auto gpu = make_cuda_backend(0).value();
  gpu->set_weights_dtype(DType::kBF16);
  const auto xd = random_bf16(static_cast<size_t>(m) * k, 11 + m), wd = random_bf16(static_cast<size_t>(n) * k, 12 + n);
  const auto bd = random_bf16(n, 13);
  std::vector<float> out[2];
  int i = 0;
  for (Backend* b : {static_cast<Backend*>(cpu.get()), gpu.get()}) {
    Tensor x = *b->alloc(b->act_dtype(), m, k);
    b->copy_from_host(xd.data(), x);
    Tensor w = *b->weight(DType::kF32, n, k, wd.data());
    Tensor bias = *b->weight(DType::kF32, n, 1, bd.data());
    Tensor y = *b->alloc(DType::kF32, m, n);
    b->gemm(x, w, with_bias ? &bias : nullptr, y);
    out[i].resize(y.numel());
    b->copy_to_host(y, out[i].data());
    i++;
  }
  return rel_error(out[1], out[0]);
}

TEST(CudaGemv, DecodeShapesMatchCpu) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device visible";
  struct Shape {
    int n, k;
  };
  // Tails of every kind: K below one warp's words, K not a multiple of the 4-word unroll, N not a multiple of
  // the block's 8 rows; then the 8B model's shapes (fused qkv, o, gate+up, down).
  const Shape shapes[] = {{1, 8}, {5, 24}, {37, 264}, {129, 1032}, {6144, 4096}, {4096, 4096}, {28672, 4096}, {4096, 14336}};
  for (int m = 1; m <= 9; m++) {  // 9: past the kernel, through cuBLAS
    for (const Shape& s : shapes) {
      if (s.n * static_cast<int64_t>(s.k) > (1 << 24) && m != 1 && m != 8) continue;  // big shapes at 1 and 8 rows
      const double err = gemm_error(m, s.n, s.k, (s.n + m) % 2 == 0);
      EXPECT_LE(err, 1e-5) << "m=" << m << " n=" << s.n << " k=" << s.k;
    }
  }
}

TEST(CudaArgmax, RowsGiveTheFirstMaximumAndItsValueLikeTheCpu) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device visible";
  auto gpu = make_cuda_backend(0).value();
  const int rows = 5, vocab = 128256;
  auto data = random_bf16(static_cast<size_t>(rows) * vocab, 21);
  // Row 1: a tie between two ids far apart (the lower wins); row 2: the maximum in the very last id; row 3: all
  // -inf but one (a masked vocabulary); row 4: all equal (id 0 wins).
  float* r1 = data.data() + vocab;
  r1[70000] = r1[90000] = 100.0f;
  data[2 * vocab + vocab - 1] = 100.0f;
  for (int v = 0; v < vocab; v++) data[3 * vocab + v] = v == 4242 ? -3.0f : -INFINITY;
  for (int v = 0; v < vocab; v++) data[4 * vocab + v] = 0.5f;
  Tensor logits = *gpu->alloc(DType::kF32, rows, vocab);
  gpu->copy_from_host(data.data(), logits);
  std::vector<int32_t> got(rows, -1), ids_only(rows, -1);
  std::vector<float> value(rows, 0.0f);
  gpu->argmax_rows(logits, got.data(), value.data());
  gpu->argmax_rows(logits, ids_only.data());
  for (int r = 0; r < rows; r++) {
    const float* l = data.data() + static_cast<size_t>(r) * vocab;
    EXPECT_EQ(got[r], std::max_element(l, l + vocab) - l) << "row " << r;
    EXPECT_EQ(value[r], *std::max_element(l, l + vocab)) << "row " << r;  // the same float, bit for bit
  }
  EXPECT_EQ(ids_only, got);
  EXPECT_EQ(got[1], 70000);
  EXPECT_EQ(value[1], 100.0f);
  EXPECT_EQ(got[2], vocab - 1);
  EXPECT_EQ(got[3], 4242);
  EXPECT_EQ(value[3], -3.0f);
  EXPECT_EQ(got[4], 0);
  EXPECT_EQ(value[4], 0.5f);
}

}  // namespace
}  // namespace keel::backend
