// CUDA sample_rows (backend/cuda/sampling.cuh) against the host reference (backend/sampling.h) over the vocab
// sizes of Llama 2, Llama 3, Qwen 2 and Gemma 3. The two may differ only where CUDA's expf and the host's differ
// by an ulp at a threshold or at the draw's target, so at least 99% of the ids must be identical.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "backend/sampling.h"

namespace keel::backend {
namespace {

#define REQUIRE_GPU() \
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device visible"

// Logits like a model's: normal with a row-dependent spread, a few clear favourites; some rows quantised (ties),
// some with -inf (masked tokens).
std::vector<float> model_like_rows(int rows, int vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<float> x(static_cast<size_t>(rows) * vocab);
  for (int r = 0; r < rows; r++) {
    std::normal_distribution<float> normal(0.0f, 1.0f + static_cast<float>(r % 4));
    const bool ties = r % 5 == 0, masked = r % 7 == 0;
    float* row = x.data() + static_cast<size_t>(r) * vocab;
    for (int i = 0; i < vocab; i++) {
      float v = normal(rng);
      if (ties) v = std::round(v * 8.0f) / 8.0f;
      if (masked && rng() % 16 == 0) v = -INFINITY;
      row[i] = v;
    }
    for (int j = 0; j < 1 + r % 3; j++) row[rng() % vocab] = 12.0f + static_cast<float>(rng() % 4);
  }
  return x;
}

std::vector<SampleParams> varied_params(int rows, int vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const float temps[] = {0.0f, 0.3f, 0.7f, 1.0f, 1.0f, 1.3f};
  const int top_ks[] = {0, 0, 1, 20, 50, 1000, vocab - 1, vocab};
  const float top_ps[] = {1.0f, 1.0f, 0.95f, 0.9f, 0.5f, 0.1f};
  const float min_ps[] = {0.0f, 0.0f, 0.0f, 0.05f, 0.2f};
  std::vector<SampleParams> p(rows);
  for (int r = 0; r < rows; r++) {
    p[r].temperature = temps[rng() % 6];
    p[r].top_k = top_ks[rng() % 8];
    p[r].top_p = top_ps[rng() % 6];
    p[r].min_p = min_ps[rng() % 5];
    p[r].seed = rng();
    p[r].counter = rng() % 4096;
  }
  return p;
}

TEST(CudaSampling, SampleRowsMatchesTheCpuReference) {
  REQUIRE_GPU();
  auto backend = make_cuda_backend();
  ASSERT_TRUE(backend.ok()) << backend.status().message();
  Backend& b = **backend;
  const int kRows = 160;  // 640 rows over the four vocab sizes
  const int vocabs[] = {32000, 128256, 151936, 262144};
  std::vector<Tensor> logits;
  std::vector<std::vector<float>> host;
  for (int v : vocabs) {
    host.push_back(model_like_rows(kRows, v, static_cast<uint64_t>(v)));
    logits.push_back(*b.alloc(DType::kF32, kRows, v));
    b.copy_from_host(host.back().data(), logits.back());
  }
  std::vector<int32_t> ids(kRows);
  const std::vector<SampleParams> warm = varied_params(kRows, vocabs[0], 0);
  b.sample_rows(logits[0], warm.data(), kRows, ids.data());
  const uint64_t allocations = b.allocations();

  int same = 0, total = 0;
  sampling::SampleScratch scratch;
  for (size_t k = 0; k < std::size(vocabs); k++) {
    const int vocab = vocabs[k];
    const std::vector<SampleParams> params = varied_params(kRows, vocab, 100 + k);
    b.sample_rows(logits[k], params.data(), kRows, ids.data());
    int same_here = 0;
    for (int r = 0; r < kRows; r++) {
      const float* row = host[k].data() + static_cast<size_t>(r) * vocab;
      const int32_t want = sampling::sample_row(row, vocab, params[r], scratch);
      ASSERT_GE(ids[r], 0);
      ASSERT_LT(ids[r], vocab);
      if (ids[r] == want) {
        same_here++;
      } else {
        std::printf("vocab %d row %d (T=%g top_k=%d top_p=%g min_p=%g): cuda %d, cpu %d\n", vocab, r,
                    params[r].temperature, params[r].top_k, params[r].top_p, params[r].min_p, ids[r], want);
      }
    }
    std::printf("vocab %d: %d of %d ids identical\n", vocab, same_here, kRows);
    same += same_here;
    total += kRows;
  }
  const double rate = static_cast<double>(same) / total;
  std::printf("CUDA sample_rows vs the CPU reference: %d of %d ids identical (%.2f%%)\n", same, total, 100 * rate);
  EXPECT_GE(rate, 0.99);
  EXPECT_EQ(b.allocations(), allocations) << "sample_rows allocated after its first call";
}

TEST(CudaSampling, SeededDrawsRepeatExactly) {
  REQUIRE_GPU();
  auto backend = make_cuda_backend();
  ASSERT_TRUE(backend.ok()) << backend.status().message();
  Backend& b = **backend;
  const int rows = 64, vocab = 128256;
  const std::vector<float> x = model_like_rows(rows, vocab, 7);
  Tensor t = *b.alloc(DType::kF32, rows, vocab);
  b.copy_from_host(x.data(), t);
  std::vector<SampleParams> p(rows);
  for (int r = 0; r < rows; r++) p[r].temperature = 1.0f, p[r].seed = 99, p[r].counter = 0;
  std::vector<int32_t> a(rows), c(rows);
  b.sample_rows(t, p.data(), rows, a.data());
  b.sample_rows(t, p.data(), rows, c.data());
  EXPECT_EQ(a, c);
  // Timing at a decode batch (Llama 3's vocab, 64 sequences): what a step pays for sampling.
  for (int r = 0; r < rows; r++) p[r].top_p = 0.95f, p[r].top_k = r % 2 == 0 ? 50 : 0;
  const int reps = 20;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; i++) {
    for (int r = 0; r < rows; r++) p[r].counter = static_cast<uint64_t>(i);
    b.sample_rows(t, p.data(), rows, c.data());
  }
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::printf("sample_rows: %d rows x %d vocab (top_p 0.95, top_k 50 on half): %.3f ms a call\n", rows, vocab,
              ms / reps);
}

}  // namespace
}  // namespace keel::backend
