#include "tokenizer/bpe.h"

#include <gtest/gtest.h>

namespace keel::tokenizer {
namespace {

Bpe make(const char* json_text) {
  auto b = Bpe::from_json(Json::parse(json_text), "model");
  EXPECT_TRUE(b.ok()) << b.status().message();
  return std::move(b).value();
}

std::vector<int32_t> tokenize(const Bpe& bpe, std::string_view word) {
  std::vector<int32_t> ids;
  bpe.tokenize(word, ids);
  return ids;
}

TEST(Bpe, AppliesMergesLowestRankFirst) {
  // "abc": a+b (rank 0) wins over b+c (rank 1), then ab+c.
  Bpe bpe = make(R"({"type": "BPE", "vocab": {"a": 0, "b": 1, "c": 2, "ab": 3, "bc": 4, "abc": 5},
                     "merges": ["a b", "b c", "ab c"]})");
  EXPECT_EQ(tokenize(bpe, "abc"), (std::vector<int32_t>{5}));
  EXPECT_EQ(tokenize(bpe, "bca"), (std::vector<int32_t>{4, 0}));
  EXPECT_EQ(tokenize(bpe, "abc"), (std::vector<int32_t>{5}));  // again, from the cache
}

TEST(Bpe, AcceptsMergesWrittenAsPairs) {
  Bpe bpe = make(R"({"vocab": {"a": 0, "b": 1, "ab": 2}, "merges": [["a", "b"]]})");
  EXPECT_EQ(tokenize(bpe, "abab"), (std::vector<int32_t>{2, 2}));
}

TEST(Bpe, EqualRanksMergeLeftmostFirst) {
  Bpe bpe = make(R"({"vocab": {"a": 0, "aa": 1}, "merges": ["a a"]})");
  EXPECT_EQ(tokenize(bpe, "aaa"), (std::vector<int32_t>{1, 0}));
}

TEST(Bpe, IgnoreMergesTakesAWholeWordInTheVocab) {
  // Merges alone would give "ab"+"c"; with ignore_merges the word itself is a token.
  const char* base = R"({"vocab": {"a": 0, "b": 1, "c": 2, "ab": 3, "abc": 4}, "merges": ["a b"], "ignore_merges": %s})";
  char with[512], without[512];
  std::snprintf(with, sizeof(with), base, "true");
  std::snprintf(without, sizeof(without), base, "false");
  EXPECT_EQ(tokenize(make(with), "abc"), (std::vector<int32_t>{4}));
  EXPECT_EQ(tokenize(make(without), "abc"), (std::vector<int32_t>{3, 2}));
}

TEST(Bpe, ByteFallbackSpellsUnknownCharactersAsByteTokens) {
  Bpe bpe = make(R"({"vocab": {"<unk>": 0, "a": 1, "<0xC3>": 2, "<0xA9>": 3}, "merges": [],
                     "unk_token": "<unk>", "byte_fallback": true})");
  EXPECT_EQ(tokenize(bpe, "aé"), (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(tokenize(bpe, "a€"), (std::vector<int32_t>{1, 0}));  // € has no byte tokens here: unk
}

TEST(Bpe, FuseUnkJoinsConsecutiveUnknowns) {
  const char* base = R"({"vocab": {"<unk>": 0, "a": 1}, "merges": [], "unk_token": "<unk>", "fuse_unk": %s})";
  char fused[256], separate[256];
  std::snprintf(fused, sizeof(fused), base, "true");
  std::snprintf(separate, sizeof(separate), base, "false");
  EXPECT_EQ(tokenize(make(fused), "xyaz"), (std::vector<int32_t>{0, 1, 0}));
  EXPECT_EQ(tokenize(make(separate), "xyaz"), (std::vector<int32_t>{0, 0, 1, 0}));
}

TEST(Bpe, SentencePieceWordsAreCutOnlyWhereNoTokenCrosses) {
  // ">▁<" crosses a "▁"; elsewhere cutting before "▁" changes nothing.
  Bpe bpe = make(R"({"vocab": {"▁": 0, "a": 1, ">": 2, "<": 3, "▁a": 4, ">▁": 5, ">▁<": 6},
                     "merges": ["▁ a", "> ▁", ">▁ <"]})");
  EXPECT_EQ(tokenize(bpe, "a▁a▁a"), (std::vector<int32_t>{1, 4, 4}));
  EXPECT_EQ(tokenize(bpe, "a>▁<▁a"), (std::vector<int32_t>{1, 6, 4}));
}

TEST(BpeFromJson, MergeOfAnUnknownTokenNamesTheMerge) {
  auto b = Bpe::from_json(Json::parse(R"({"vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b", "a c"]})"), "model");
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), Code::kCorruption);
  EXPECT_NE(b.status().message().find("model.merges[1]"), std::string::npos) << b.status().message();
  EXPECT_NE(b.status().message().find("'c'"), std::string::npos) << b.status().message();
}

TEST(BpeFromJson, VocabOfTheWrongTypeNamesTheField) {
  auto b = Bpe::from_json(Json::parse(R"({"vocab": [1, 2], "merges": []})"), "model");
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("model.vocab"), std::string::npos) << b.status().message();
}

TEST(BpeFromJson, OtherModelTypesAreUnsupported) {
  auto b = Bpe::from_json(Json::parse(R"({"type": "Unigram", "vocab": [], "merges": []})"), "model");
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), Code::kUnsupported);
  EXPECT_NE(b.status().message().find("Unigram"), std::string::npos);
}

}  // namespace
}  // namespace keel::tokenizer
