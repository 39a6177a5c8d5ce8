// backend/sampling.h's reference against brute force: the radix-select thresholds against a full sort, and the
// draw against a walk over the brute-force kept set.
#include "backend/sampling.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

namespace keel::backend::sampling {
namespace {

// The thresholds the header's comment defines, by sorting.
struct BruteForce {
  uint32_t top_k_key = 0;
  uint32_t key_floor = 0;
  uint64_t mass = 0;
  std::vector<bool> kept;
};

BruteForce brute_force(const std::vector<float>& x, const SampleParams& p) {
  const int64_t n = static_cast<int64_t>(x.size());
  float top = -INFINITY;
  for (float v : x)
    if (v > top) top = v;
  std::vector<uint32_t> key(n);
  std::vector<uint64_t> w(n);
  for (int64_t i = 0; i < n; i++) key[i] = logit_key(x[i]), w[i] = weight(x[i], top, p.temperature);
  BruteForce b;
  if (p.top_k > 0 && p.top_k < n) {
    std::vector<uint32_t> sorted = key;
    std::sort(sorted.begin(), sorted.end(), std::greater<>());
    b.top_k_key = sorted[p.top_k - 1];
  }
  const double min_w = min_p_floor(p.min_p);
  std::vector<int64_t> kept;
  for (int64_t i = 0; i < n; i++)
    if (key[i] >= b.top_k_key && static_cast<double>(w[i]) >= min_w) kept.push_back(i);
  uint64_t mass = 0;
  for (int64_t i : kept) mass += w[i];
  b.key_floor = b.top_k_key;
  if (p.top_p < 1.0f && mass > 0) {
    const uint64_t need = top_p_need(p.top_p, mass);
    std::sort(kept.begin(), kept.end(), [&](int64_t a, int64_t c) { return key[a] > key[c]; });
    uint64_t run = 0;
    for (int64_t i : kept) {
      run += w[i];
      if (run >= need) {
        b.key_floor = key[i];
        break;
      }
    }
  }
  b.kept.assign(n, false);
  for (int64_t i = 0; i < n; i++) {
    if (key[i] >= b.key_floor && static_cast<double>(w[i]) >= min_w && w[i] > 0) {
      b.kept[i] = true;
      b.mass += w[i];
    }
  }
  return b;
}

// Normal logits with some exact ties, some -inf and, in one row of four, a block of repeated maxima.
std::vector<float> random_row(int64_t n, std::mt19937_64& rng) {
  std::normal_distribution<float> normal(0.0f, std::uniform_real_distribution<float>(0.5f, 4.0f)(rng));
  std::uniform_int_distribution<int> coin(0, 99);
  const bool quantised = coin(rng) < 50;
  std::vector<float> x(n);
  for (auto& v : x) {
    v = normal(rng);
    if (quantised) v = std::round(v * 4.0f) / 4.0f;  // many ties
    if (coin(rng) < 3) v = -INFINITY;
  }
  if (coin(rng) < 25) {
    const float top = *std::max_element(x.begin(), x.end()) + 1.0f;
    for (int64_t i = 0; i < std::min<int64_t>(n, 5); i++) x[(i * 7919) % n] = top;
  }
  return x;
}

SampleParams random_params(int64_t n, std::mt19937_64& rng) {
  const float temps[] = {0.2f, 0.7f, 1.0f, 1.5f};
  const float top_ps[] = {1.0f, 0.95f, 0.8f, 0.5f, 0.1f};
  const float min_ps[] = {0.0f, 0.0f, 0.05f, 0.3f};
  const int64_t top_ks[] = {0, 1, 2, 7, 40, n / 2, n - 1, n, n + 3};
  SampleParams p;
  p.temperature = temps[rng() % 4];
  p.top_p = top_ps[rng() % 5];
  p.min_p = min_ps[rng() % 4];
  p.top_k = static_cast<int32_t>(std::max<int64_t>(0, top_ks[rng() % 9]));
  p.seed = rng();
  p.counter = rng() % 1000;
  return p;
}

// The draw over the brute-force kept set: the first kept token, in index order, whose running mass exceeds the
// target.
int32_t brute_draw(const std::vector<float>& x, const SampleParams& p, const BruteForce& b) {
  float top = -INFINITY;
  for (float v : x)
    if (v > top) top = v;
  const uint64_t target = draw_target(p.seed, p.counter, b.mass);
  uint64_t run = 0;
  int32_t last = 0;
  for (size_t i = 0; i < x.size(); i++) {
    if (!b.kept[i]) continue;
    run += weight(x[i], top, p.temperature);
    last = static_cast<int32_t>(i);
    if (run > target) return last;
  }
  return last;
}

TEST(SamplingReference, RadixThresholdsEqualAFullSortOnRandomRowsWithTiesAndInfinities) {
  std::mt19937_64 rng(1);
  SampleScratch scratch;
  int checked = 0, top_k_rows = 0, top_p_rows = 0;
  for (int64_t n : {1, 2, 3, 17, 256, 1000, 4099, 32000}) {
    for (int row = 0; row < 60; row++) {
      const std::vector<float> x = random_row(n, rng);
      const SampleParams p = random_params(n, rng);
      const RowFilter f = filter_row(x.data(), n, p, scratch);
      const BruteForce b = brute_force(x, p);
      ASSERT_EQ(f.top_k_key, b.top_k_key) << "n=" << n << " row " << row << " top_k=" << p.top_k;
      ASSERT_EQ(f.key_floor, b.key_floor) << "n=" << n << " row " << row << " top_p=" << p.top_p;
      ASSERT_EQ(f.mass, b.mass) << "n=" << n << " row " << row;
      ASSERT_EQ(sample_row(x.data(), n, p, scratch), brute_draw(x, p, b)) << "n=" << n << " row " << row;
      checked++;
      top_k_rows += p.top_k > 0 && p.top_k < n;
      top_p_rows += f.key_floor != f.top_k_key;
    }
  }
  EXPECT_EQ(checked, 480);
  EXPECT_GT(top_k_rows, 100);
  EXPECT_GT(top_p_rows, 100);  // top_p cut something off
}

TEST(SamplingReference, ThresholdsAreExactAtAVocabOf262144) {
  std::mt19937_64 rng(2);
  SampleScratch scratch;
  const int64_t n = 262144;
  for (int row = 0; row < 4; row++) {
    const std::vector<float> x = random_row(n, rng);
    SampleParams p = random_params(n, rng);
    p.top_k = row % 2 == 0 ? 50 : 0;
    p.top_p = row < 2 ? 0.9f : 0.3f;
    const RowFilter f = filter_row(x.data(), n, p, scratch);
    const BruteForce b = brute_force(x, p);
    EXPECT_EQ(f.top_k_key, b.top_k_key) << "row " << row;
    EXPECT_EQ(f.key_floor, b.key_floor) << "row " << row;
    EXPECT_EQ(f.mass, b.mass) << "row " << row;
    EXPECT_EQ(sample_row(x.data(), n, p, scratch), brute_draw(x, p, b)) << "row " << row;
  }
}

TEST(SamplingReference, KeysOrderLikeTheFloatsWithNanLowestAndSignedZerosEqual) {
  const float values[] = {-INFINITY, -1e30f, -2.5f, -1e-30f, 0.0f, 1e-30f, 1.0f, 3e38f, INFINITY};
  for (size_t i = 1; i < std::size(values); i++) EXPECT_LT(logit_key(values[i - 1]), logit_key(values[i])) << i;
  EXPECT_EQ(logit_key(-0.0f), logit_key(0.0f));
  EXPECT_EQ(logit_key(NAN), 0u);
  EXPECT_LT(logit_key(NAN), logit_key(-INFINITY));
}

TEST(SamplingReference, WeightsAreScaledExpAndTheMaxWeighsExactly2To32) {
  EXPECT_EQ(weight(2.0f, 2.0f, 0.7f), kWeightOne);
  EXPECT_EQ(weight(INFINITY, INFINITY, 1.0f), kWeightOne);
  EXPECT_EQ(weight(-INFINITY, 2.0f, 1.0f), 0u);
  EXPECT_EQ(weight(NAN, 2.0f, 1.0f), 0u);
  EXPECT_EQ(weight(1.0f, INFINITY, 1.0f), 0u);
  EXPECT_EQ(weight(-30.0f, 0.0f, 1.0f), 0u);  // e^-30 * 2^32 < 1
  EXPECT_EQ(weight(0.0f, std::log(2.0f), 1.0f), static_cast<uint64_t>(std::exp(-std::log(2.0f)) * 4294967296.0f));
}

TEST(SamplingReference, DrawsDependOnlyOnSeedAndCounter) {
  EXPECT_EQ(uniform(7, 3), uniform(7, 3));
  EXPECT_NE(uniform(7, 3), uniform(7, 4));
  EXPECT_NE(uniform(7, 3), uniform(8, 3));
  double lo = 1, hi = 0, sum = 0;
  for (uint64_t c = 0; c < 100000; c++) {
    const double u = uniform(42, c);
    lo = std::min(lo, u), hi = std::max(hi, u), sum += u;
  }
  EXPECT_GE(lo, 0.0);
  EXPECT_LT(hi, 1.0);
  EXPECT_NEAR(sum / 100000, 0.5, 0.005);
}

TEST(SamplingReference, AnAllNanRowFallsBackToTheArgmaxRule) {
  const std::vector<float> x(5, NAN);
  SampleParams p;
  p.temperature = 1.0f;
  EXPECT_EQ(sample_row(x.data(), 5, p), 0);
}

}  // namespace
}  // namespace keel::backend::sampling
