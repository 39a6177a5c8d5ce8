#include "engine/sampler.h"

#include <gtest/gtest.h>

#include <map>

namespace keel::engine {

TEST(Sampler, TemperatureZeroIsArgmaxWithLowestIdOnTies) {
  SamplingParams p;
  p.temperature = 0;
  Sampler s(p);
  std::vector<float> l = {0.1f, 3.0f, 3.0f, -1.0f};
  EXPECT_EQ(s.sample(l.data(), 4, {}), 1);
}

TEST(Sampler, SameSeedSameTokens) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 42;
  std::vector<float> l = {1.0f, 1.1f, 0.9f, 1.05f, 0.2f};
  Sampler a(p), b(p);
  for (int i = 0; i < 50; i++) EXPECT_EQ(a.sample(l.data(), 5, {}), b.sample(l.data(), 5, {}));
}

TEST(Sampler, TopKOneIsGreedy) {
  SamplingParams p;
  p.top_k = 1;
  p.seed = 3;
  Sampler s(p);
  std::vector<float> l = {0.0f, 0.5f, 0.4f};
  for (int i = 0; i < 20; i++) EXPECT_EQ(s.sample(l.data(), 3, {}), 1);
}

TEST(Sampler, TopPKeepsOnlyTheNucleus) {
  SamplingParams p;
  p.top_p = 0.5f;
  p.seed = 1;
  Sampler s(p);
  // Probabilities ~ 0.64, 0.24, 0.09, 0.03: the nucleus at 0.5 is the first token alone.
  std::vector<float> l = {3.0f, 2.0f, 1.0f, 0.0f};
  for (int i = 0; i < 50; i++) EXPECT_EQ(s.sample(l.data(), 4, {}), 0);
}

TEST(Sampler, SamplesFollowTheDistribution) {
  SamplingParams p;
  p.seed = 9;
  Sampler s(p);
  std::vector<float> l = {0.0f, std::log(3.0f)};  // 1:3
  std::map<int, int> counts;
  for (int i = 0; i < 4000; i++) counts[s.sample(l.data(), 2, {})]++;
  EXPECT_NEAR(counts[1] / 4000.0, 0.75, 0.03);
}

TEST(Sampler, RepetitionPenaltyDiscouragesSeenTokens) {
  SamplingParams p;
  p.temperature = 0;
  p.repetition_penalty = 2.0f;
  Sampler s(p);
  std::vector<float> l = {2.0f, 1.5f};
  EXPECT_EQ(s.sample(l.data(), 2, {0}), 1);  // 2.0/2 = 1.0 < 1.5
}

TEST(Sampler, InvalidParametersAreNamed) {
  SamplingParams p;
  p.top_p = 1.5f;
  Status st = p.validate();
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("top_p"), std::string::npos);
}

}  // namespace keel::engine
