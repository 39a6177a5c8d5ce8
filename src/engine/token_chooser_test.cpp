#include "engine/token_chooser.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <span>
#include <cmath>
#include <vector>

namespace keel::engine {
namespace {

constexpr int kDraws = 20000;

// The token a row of `l` gets with `p`, after `history` (all prompt), in the draw numbered `counter`.
int32_t pick(TokenChooser& chooser, const SamplingParams& p, const std::vector<float>& l,
             const std::vector<int32_t>& history, uint64_t counter) {
  const ChoiceRow row{&p, &history, static_cast<int>(history.size()), counter};
  return chooser.choose(l.data(), static_cast<int>(l.size()), row).token;
}

// Each token's frequency over kDraws draws numbered 0, 1, 2, ... (as a sequence's tokens are).
std::vector<double> frequencies(const SamplingParams& p, const std::vector<float>& l) {
  TokenChooser s;
  std::vector<int> n(l.size());
  for (uint64_t c = 0; c < kDraws; c++) n[pick(s, p, l, {}, c)]++;
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

TEST(TokenChooser, TemperatureZeroIsArgmaxWithLowestIdOnTies) {
  SamplingParams p;
  p.temperature = 0;
  TokenChooser s;
  std::vector<float> l = {0.1f, 3.0f, 3.0f, -1.0f};
  for (uint64_t c = 0; c < 5; c++) EXPECT_EQ(pick(s, p, l, {}, c), 1);
}

TEST(TokenChooser, FollowsTheSoftmaxAtTemperature) {
  for (float t : {0.5f, 1.0f, 2.0f}) {
    SamplingParams p;
    p.temperature = t;
    p.seed = 9;
    const auto want = filtered(kLogits, t, std::vector<bool>(kLogits.size(), true));
    EXPECT_LT(max_gap(frequencies(p, kLogits), want), 0.012) << "T=" << t;
  }
}

TEST(TokenChooser, TopKKeepsTheKLargestAndEveryTieAtTheThreshold) {
  SamplingParams p;
  p.top_k = 3;  // the 3rd largest is 1.7: 2.5, 2.5, 1.7
  const auto f = frequencies(p, kLogits);
  EXPECT_LT(max_gap(f, filtered(kLogits, 1.0f, {false, true, false, true, false, true, false, false})), 0.012);
  p.top_k = 1;  // the largest is tied: both kept, evenly
  const auto g = frequencies(p, kLogits);
  EXPECT_LT(max_gap(g, filtered(kLogits, 1.0f, {false, true, false, true, false, false, false, false})), 0.012);
}

TEST(TokenChooser, TopPKeepsTheSmallestHeadReachingP) {
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

TEST(TokenChooser, TopPKeepsEveryTieAtItsThreshold) {
  const std::vector<float> l = {1.0f, 2.0f, 2.0f, 2.0f, 0.0f};
  SamplingParams p;
  p.top_p = 0.1f;  // one of the tied three would do; all three are kept
  EXPECT_LT(max_gap(frequencies(p, l), filtered(l, 1.0f, {false, true, true, true, false})), 0.012);
}

TEST(TokenChooser, MinPDropsTokensBelowAFractionOfTheMostLikely) {
  // Relative to the first: 1, 0.5, 0.25, 0.1.
  const std::vector<float> l = {0.0f, std::log(0.5f), std::log(0.25f), std::log(0.1f)};
  SamplingParams p;
  p.min_p = 0.2f;
  EXPECT_LT(max_gap(frequencies(p, l), filtered(l, 1.0f, {true, true, true, false})), 0.012);
  p.min_p = 0.3f;
  EXPECT_LT(max_gap(frequencies(p, l), filtered(l, 1.0f, {true, true, false, false})), 0.012);
}

TEST(TokenChooser, FiltersCombine) {
  SamplingParams p;
  p.temperature = 0.8f;
  p.top_k = 4;    // 2.5, 2.5, 1.7, 1.0
  p.top_p = 0.9f;  // of those at 0.8: ~0.40, 0.40, 0.15, 0.06: the first three reach 0.9
  const auto want = filtered(kLogits, 0.8f, {false, true, false, true, false, true, false, false});
  EXPECT_LT(max_gap(frequencies(p, kLogits), want), 0.012);
}

TEST(TokenChooser, ASeedAndCounterGiveOneTokenWhateverCameBefore) {
  SamplingParams p;
  p.seed = 42;
  TokenChooser a, b;
  std::vector<int32_t> first;
  for (uint64_t c = 0; c < 50; c++) first.push_back(pick(a, p, kLogits, {}, c));
  for (uint64_t c = 50; c-- > 0;) EXPECT_EQ(pick(b, p, kLogits, {}, c), first[c]) << c;
  // Another seed draws otherwise.
  p.seed = 43;
  TokenChooser e;
  int same = 0;
  for (uint64_t c = 0; c < 50; c++) same += pick(e, p, kLogits, {}, c) == first[c];
  EXPECT_LT(same, 40);
}

TEST(TokenChooser, NegativeInfinityIsNeverDrawn) {
  SamplingParams p;
  p.temperature = 2.0f;
  EXPECT_EQ(frequencies(p, kLogits)[7], 0.0);
}

TEST(TokenChooser, RepetitionPenaltyDiscouragesSeenTokens) {
  SamplingParams p;
  p.temperature = 0;
  p.repetition_penalty = 2.0f;
  TokenChooser s;
  std::vector<float> l = {2.0f, 1.5f};
  EXPECT_EQ(pick(s, p, l, {0}, 0), 1);  // 2.0/2 = 1.0 < 1.5
}

TEST(TokenChooser, PenaltiesApplyBeforeTheDraw) {
  const std::vector<float> l = {0.0f, std::log(3.0f)};  // 1:3
  SamplingParams p;
  p.presence_penalty = std::log(3.0f);  // token 1 seen: 1:1
  TokenChooser s;
  double ones = 0;
  for (uint64_t c = 0; c < kDraws; c++) ones += pick(s, p, l, {1}, c) == 1;
  EXPECT_NEAR(ones / kDraws, 0.5, 0.012);
}

TEST(TokenChooser, InvalidParametersAreNamed) {
  SamplingParams p;
  p.top_p = 1.5f;
  Status st = p.validate();
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("top_p"), std::string::npos);
  p = SamplingParams();
  p.logit_bias = {{3, 1.0f}, {3, 2.0f}};
  EXPECT_EQ(p.validate().message(), "logit_bias: token id 3 appears twice");
  p.logit_bias = {{-1, 1.0f}};
  EXPECT_EQ(p.validate().message(), "logit_bias: token id -1 is negative");
}

TEST(TokenChooser, AStrongLogitBiasForcesOrBansAToken) {
  SamplingParams p;
  p.seed = 5;
  p.logit_bias = {{6, 100.0f}};  // the 7th most likely token (logit 0)
  const auto f = frequencies(p, kLogits);
  EXPECT_EQ(f[6], 1.0);
  SamplingParams greedy;
  greedy.temperature = 0;
  greedy.logit_bias = {{1, -100.0f}};  // the first of the two tied maxima
  TokenChooser s;
  EXPECT_EQ(pick(s, greedy, kLogits, {}, 0), 3);
}

TEST(TokenChooser, LogitBiasShiftsTheDistributionByItsFactor) {
  const std::vector<float> l = {0.0f, 0.0f};  // 1:1
  SamplingParams p;
  p.logit_bias = {{1, std::log(3.0f)}};  // 1:3
  EXPECT_NEAR(frequencies(p, l)[1], 0.75, 0.012);
}

// Allows the tokens in `ids` only, and records what it was shown.
class OnlyThese : public TokenMask {
 public:
  explicit OnlyThese(std::vector<int32_t> ids) : ids_(std::move(ids)) {}
  void fill(std::span<const int32_t> generated, std::span<uint32_t> allowed) override {
    seen.assign(generated.begin(), generated.end());
    std::fill(allowed.begin(), allowed.end(), 0u);
    for (int32_t id : ids_) allowed[id / 32] |= 1u << (id % 32);
  }
  std::vector<int32_t> seen;

 private:
  std::vector<int32_t> ids_;
};

TEST(TokenChooser, AMaskBansEveryTokenItDisallowsBeforeTheChoice) {
  SamplingParams p;
  p.temperature = 2.0f;
  OnlyThese mask({0, 4});
  TokenChooser s;
  const std::vector<int32_t> history = {7, 7, 2, 5};  // a prompt of 2, then 2 generated
  int counts[8] = {};
  for (uint64_t c = 0; c < 2000; c++) {
    const ChoiceRow row{&p, &history, 2, c, -1, &mask};
    counts[s.choose(kLogits.data(), 8, row).token]++;
  }
  EXPECT_EQ(counts[0] + counts[4], 2000);
  EXPECT_GT(counts[4], 0);
  EXPECT_EQ(mask.seen, (std::vector<int32_t>{2, 5}));
  // Greedy: the best allowed token, not the best.
  p.temperature = 0;
  const ChoiceRow row{&p, &history, 2, 0, -1, &mask};
  EXPECT_EQ(s.choose(kLogits.data(), 8, row).token, 0);
  // A mask that allows nothing leaves the row as it was.
  OnlyThese none({});
  const ChoiceRow unmasked{&p, &history, 2, 0, -1, &none};
  EXPECT_EQ(s.choose(kLogits.data(), 8, unmasked).token, 1);
}

TEST(TokenChooser, BitsFilledAheadAreUsedInsteadOfAskingTheMask) {
  SamplingParams p;
  p.temperature = 0;
  OnlyThese mask({1});  // would allow the best token
  const std::vector<int32_t> history = {7, 2};
  const uint32_t bits = 1u << 6;  // what ModelRunner filled: token 6 alone
  const ChoiceRow row{&p, &history, 1, 0, -1, &mask, &bits};
  TokenChooser s;
  EXPECT_EQ(s.choose(kLogits.data(), 8, row).token, 6);
  EXPECT_TRUE(mask.seen.empty());
}

TEST(TokenChooser, AMaskOverAVocabularyOfManyWordsBansEveryDisallowedToken) {
  // 100 tokens: four words, the last partial; ids 31, 32, 64 and 99 sit on word edges.
  std::vector<float> logits(100);
  for (int v = 0; v < 100; v++) logits[v] = static_cast<float>(v);  // the best is the highest id
  SamplingParams p;
  p.temperature = 0;
  const std::vector<int32_t> history = {1};
  TokenChooser s;
  for (std::vector<int32_t> ids : {std::vector<int32_t>{31}, {32}, {0, 64}, {99}, {5, 31, 32, 63}}) {
    OnlyThese mask(ids);
    const ChoiceRow row{&p, &history, 1, 0, -1, &mask};
    EXPECT_EQ(s.choose(logits.data(), 100, row).token, ids.back());
  }
}

TEST(TokenChooser, PlainRowsAreChosenOnTheDeviceWhereTheModelCan) {
  SamplingParams greedy, sampled, biased, penalised;
  greedy.temperature = 0;
  biased.logit_bias = {{1, 1.0f}};
  penalised.presence_penalty = 0.5f;
  const std::vector<int32_t> h = {1};
  const ChoiceRow g{&greedy, &h}, s{&sampled, &h}, b{&biased, &h}, pe{&penalised, &h};
  ChoiceRow logprobs = g;
  logprobs.top_logprobs = 0;
  OnlyThese mask({1});
  ChoiceRow masked = g;
  masked.mask = &mask;
  using R = std::vector<ChoiceRow>;
  EXPECT_EQ(TokenChooser::site(R{g, g}, true, true), ChoiceSite::kDeviceGreedy);
  EXPECT_EQ(TokenChooser::site(R{g, s}, true, true), ChoiceSite::kDeviceSample);
  for (const ChoiceRow& host : {b, pe, logprobs, masked})
    EXPECT_EQ(TokenChooser::site(R{g, host}, true, true), ChoiceSite::kHost);
  // A pipeline (no device argmax) and a tensor-parallel group (no device draw) choose on the host.
  EXPECT_EQ(TokenChooser::site(R{g}, false, false), ChoiceSite::kHost);
  EXPECT_EQ(TokenChooser::site(R{g}, true, false), ChoiceSite::kDeviceGreedy);
  EXPECT_EQ(TokenChooser::site(R{s}, true, false), ChoiceSite::kHost);
}

// Rows of logits after each prefix of a draft: row i favours token (i * 3) % 8 strongly.
std::vector<float> draft_rows(int rows) {
  std::vector<float> l(static_cast<size_t>(rows) * 8, 0.0f);
  for (int i = 0; i < rows; i++) l[i * 8 + (i * 3) % 8] = 5.0f;
  return l;
}

TEST(TokenChooser, VerifyKeepsTheDraftWhileItIsWhatChoosingWouldGiveThenTakesTheChoice) {
  SamplingParams p;
  p.temperature = 0;
  const std::vector<int32_t> history = {1, 2};
  const ChoiceRow row{&p, &history, 2, 0};
  TokenChooser s;
  const std::vector<float> l = draft_rows(4);
  // The whole draft agrees: all of it and the token after it.
  EXPECT_EQ(s.verify(l.data(), 8, row, std::vector<int32_t>{0, 3, 6}), (std::vector<int32_t>{0, 3, 6, 1}));
  // The second disagrees: the first, then the second row's choice.
  EXPECT_EQ(s.verify(l.data(), 8, row, std::vector<int32_t>{0, 4, 6}), (std::vector<int32_t>{0, 3}));
  // No draft: one ordinary choice.
  EXPECT_EQ(s.verify(l.data(), 8, row, {}), (std::vector<int32_t>{0}));
}

TEST(TokenChooser, VerifyOfASeededSampledRowNumbersItsDrawsAsOneAtATimeWould) {
  SamplingParams p;
  p.temperature = 1.5f;
  p.seed = 77;
  p.presence_penalty = 0.7f;  // so each row's history (the draft before it) matters too
  std::vector<int32_t> history = {3, 3};
  const int rows = 6;
  std::vector<float> l(rows * 8);
  for (size_t i = 0; i < l.size(); i++) l[i] = static_cast<float>((i * 7) % 5) * 0.3f;
  // One at a time: row i chosen after the tokens chosen before it, draw numbered 10 + i.
  TokenChooser s;
  std::vector<int32_t> want, h = history;
  for (int i = 0; i < rows; i++) {
    const ChoiceRow r{&p, &h, 2, static_cast<uint64_t>(10 + i)};
    want.push_back(s.choose(l.data() + i * 8, 8, r).token);
    h.push_back(want.back());
  }
  const ChoiceRow row{&p, &history, 2, 10};
  const std::vector<int32_t> draft(want.begin(), want.end() - 1);
  EXPECT_EQ(s.verify(l.data(), 8, row, draft), want);
}

}  // namespace
}  // namespace keel::engine
