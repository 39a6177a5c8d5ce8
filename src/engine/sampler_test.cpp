#include "engine/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace keel::engine {
namespace {

constexpr int kDraws = 20000;

// Each token's frequency over kDraws draws numbered 0, 1, 2, ... (as a sequence's tokens are).
std::vector<double> frequencies(const SamplingParams& p, const std::vector<float>& l) {
  Sampler s(p);
  std::vector<int> n(l.size());
  for (uint64_t c = 0; c < kDraws; c++) n[s.sample(l.data(), static_cast<int>(l.size()), {}, c)]++;
  std::vector<double> f(l.size());
  for (size_t i = 0; i < l.size(); i++) f[i] = static_cast<double>(n[i]) / kDraws;
  return f;
}

// softmax(l / T) renormalised over `kept`: the distribution a draw must follow.
std::vector<double> filtered(const std::vector<float>& l, float temperature, const std::vector<bool>& kept) {
  std::vector<double> p(l.size());
  double sum = 0;
  for (size_t i = 0; i < l.size(); i++)
    if (kept[i]) sum += p[i] = std::exp((l[i] - *std::max_element(l.begin(), l.end())) / temperature);
  for (double& x : p) x /= sum;
  return p;
}

double max_gap(const std::vector<double>& a, const std::vector<double>& b) {
  double g = 0;
  for (size_t i = 0; i < a.size(); i++) g = std::max(g, std::abs(a[i] - b[i]));
  return g;
}

const std::vector<float> kLogits = {1.0f, 2.5f, 0.3f, 2.5f, -1.0f, 1.7f, 0.0f, -INFINITY};

TEST(Sampler, TemperatureZeroIsArgmaxWithLowestIdOnTies) {
  SamplingParams p;
  p.temperature = 0;
  Sampler s(p);
  std::vector<float> l = {0.1f, 3.0f, 3.0f, -1.0f};
  for (uint64_t c = 0; c < 5; c++) EXPECT_EQ(s.sample(l.data(), 4, {}, c), 1);
}

TEST(Sampler, FollowsTheSoftmaxAtTemperature) {
  for (float t : {0.5f, 1.0f, 2.0f}) {
    SamplingParams p;
    p.temperature = t;
    p.seed = 9;
    const auto want = filtered(kLogits, t, std::vector<bool>(kLogits.size(), true));
    EXPECT_LT(max_gap(frequencies(p, kLogits), want), 0.012) << "T=" << t;
  }
}

TEST(Sampler, TopKKeepsTheKLargestAndEveryTieAtTheThreshold) {
  SamplingParams p;
  p.top_k = 3;  // the 3rd largest is 1.7: 2.5, 2.5, 1.7
  const auto f = frequencies(p, kLogits);
  EXPECT_LT(max_gap(f, filtered(kLogits, 1.0f, {false, true, false, true, false, true, false, false})), 0.012);
  p.top_k = 1;  // the largest is tied: both kept, evenly
  const auto g = frequencies(p, kLogits);
  EXPECT_LT(max_gap(g, filtered(kLogits, 1.0f, {false, true, false, true, false, false, false, false})), 0.012);
}

TEST(Sampler, TopPKeepsTheSmallestHeadReachingP) {
  // Probabilities ~ 0.644, 0.237, 0.087, 0.032.
  const std::vector<float> l = {3.0f, 2.0f, 1.0f, 0.0f};
  SamplingParams p;
  p.top_p = 0.6f;  // 0.644 >= 0.6: the first alone
  EXPECT_EQ(frequencies(p, l)[0], 1.0);
  p.top_p = 0.7f;  // 0.644 < 0.7 <= 0.881: the first two
  EXPECT_LT(max_gap(frequencies(p, l), filtered(l, 1.0f, {true, true, false, false})), 0.012);
  p.top_p = 0.95f;  // 0.968 reaches it: the first three
  EXPECT_LT(max_gap(frequencies(p, l), filtered(l, 1.0f, {true, true, true, false})), 0.012);
}

TEST(Sampler, TopPKeepsEveryTieAtItsThreshold) {
  const std::vector<float> l = {1.0f, 2.0f, 2.0f, 2.0f, 0.0f};
  SamplingParams p;
  p.top_p = 0.1f;  // one of the tied three would do; all three are kept
  EXPECT_LT(max_gap(frequencies(p, l), filtered(l, 1.0f, {false, true, true, true, false})), 0.012);
}

TEST(Sampler, MinPDropsTokensBelowAFractionOfTheMostLikely) {
  // Relative to the first: 1, 0.5, 0.25, 0.1.
  const std::vector<float> l = {0.0f, std::log(0.5f), std::log(0.25f), std::log(0.1f)};
  SamplingParams p;
  p.min_p = 0.2f;
  EXPECT_LT(max_gap(frequencies(p, l), filtered(l, 1.0f, {true, true, true, false})), 0.012);
  p.min_p = 0.3f;
  EXPECT_LT(max_gap(frequencies(p, l), filtered(l, 1.0f, {true, true, false, false})), 0.012);
}

TEST(Sampler, FiltersCombine) {
  SamplingParams p;
  p.temperature = 0.8f;
  p.top_k = 4;    // 2.5, 2.5, 1.7, 1.0
  p.top_p = 0.9f;  // of those at 0.8: ~0.40, 0.40, 0.15, 0.06: the first three reach 0.9
  const auto want = filtered(kLogits, 0.8f, {false, true, false, true, false, true, false, false});
  EXPECT_LT(max_gap(frequencies(p, kLogits), want), 0.012);
}

TEST(Sampler, ASeedAndCounterGiveOneTokenWhateverCameBefore) {
  SamplingParams p;
  p.seed = 42;
  Sampler a(p), b(p);
  std::vector<int32_t> first;
  for (uint64_t c = 0; c < 50; c++) first.push_back(a.sample(kLogits.data(), 8, {}, c));
  for (uint64_t c = 50; c-- > 0;) EXPECT_EQ(b.sample(kLogits.data(), 8, {}, c), first[c]) << c;
  // Without a counter, the n-th call is draw n.
  Sampler d(p);
  for (uint64_t c = 0; c < 50; c++) EXPECT_EQ(d.sample(kLogits.data(), 8, {}), first[c]) << c;
  // Another seed draws otherwise.
  p.seed = 43;
  Sampler e(p);
  int same = 0;
  for (uint64_t c = 0; c < 50; c++) same += e.sample(kLogits.data(), 8, {}, c) == first[c];
  EXPECT_LT(same, 40);
}

TEST(Sampler, NegativeInfinityIsNeverDrawn) {
  SamplingParams p;
  p.temperature = 2.0f;
  EXPECT_EQ(frequencies(p, kLogits)[7], 0.0);
}

TEST(Sampler, RepetitionPenaltyDiscouragesSeenTokens) {
  SamplingParams p;
  p.temperature = 0;
  p.repetition_penalty = 2.0f;
  Sampler s(p);
  std::vector<float> l = {2.0f, 1.5f};
  EXPECT_EQ(s.sample(l.data(), 2, {0}, 0), 1);  // 2.0/2 = 1.0 < 1.5
}

TEST(Sampler, PenaltiesApplyBeforeTheDraw) {
  const std::vector<float> l = {0.0f, std::log(3.0f)};  // 1:3
  SamplingParams p;
  p.presence_penalty = std::log(3.0f);  // token 1 seen: 1:1
  Sampler s(p);
  double ones = 0;
  for (uint64_t c = 0; c < kDraws; c++) ones += s.sample(l.data(), 2, {1}, c) == 1;
  EXPECT_NEAR(ones / kDraws, 0.5, 0.012);
}

TEST(Sampler, InvalidParametersAreNamed) {
  SamplingParams p;
  p.top_p = 1.5f;
  Status st = p.validate();
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("top_p"), std::string::npos);
}

}  // namespace
}  // namespace keel::engine
