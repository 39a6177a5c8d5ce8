#include "tokenizer/added_tokens.h"

#include <gtest/gtest.h>

namespace keel::tokenizer {
namespace {

AddedVocabulary make(const char* json_text) {
  auto v = AddedVocabulary::from_json(Json::parse(json_text), nullptr, "added_tokens");
  EXPECT_TRUE(v.ok()) << v.status().message();
  return std::move(v).value();
}

// Each split as "text" or "[id:text]".
std::string show(const AddedVocabulary& v, std::string_view text) {
  std::vector<AddedSplit> splits;
  v.split(text, false, splits);
  std::string out;
  for (const auto& s : splits) {
    std::string piece(text.substr(s.start, s.end - s.start));
    out += s.id >= 0 ? "[" + std::to_string(s.id) + ":" + piece + "]" : "(" + piece + ")";
  }
  return out;
}

TEST(AddedVocabulary, MatchesLeftmostLongest) {
  auto v = make(R"([{"id": 1, "content": "<a>", "special": true, "normalized": false},
                    {"id": 2, "content": "<a><b>", "special": true, "normalized": false},
                    {"id": 3, "content": "<b>", "special": true, "normalized": false}])");
  EXPECT_EQ(show(v, "x<a><b>y<b><a>"), "(x)[2:<a><b>](y)[3:<b>][1:<a>]");
  EXPECT_EQ(show(v, "<a"), "(<a)");
}

TEST(AddedVocabulary, LstripAndRstripSwallowNeighbouringWhitespace) {
  auto v = make(R"([{"id": 7, "content": "<m>", "lstrip": true, "rstrip": true, "special": true, "normalized": false}])");
  EXPECT_EQ(show(v, "a  <m>\n b"), "(a)[7:  <m>\n ](b)");
}

TEST(AddedVocabulary, SingleWordTokensAreNotMatchedInsideWords) {
  auto v = make(R"([{"id": 9, "content": "cat", "single_word": true, "normalized": false}])");
  EXPECT_EQ(show(v, "cat concat cats cat."), "[9:cat]( concat cats )[9:cat](.)");
}

TEST(AddedVocabulary, NormalizedTokensAreMatchedSeparately) {
  auto v = make(R"([{"id": 4, "content": "hi", "special": false, "normalized": true}])");
  std::vector<AddedSplit> raw, normalized;
  v.split("ohio", false, raw);
  v.split("ohio", true, normalized);
  EXPECT_EQ(raw.size(), 1u);
  ASSERT_EQ(normalized.size(), 3u);
  EXPECT_EQ(normalized[1].id, 4);
}

TEST(AddedVocabulary, MissingContentNamesTheEntry) {
  auto v = AddedVocabulary::from_json(Json::parse(R"([{"id": 1, "content": "a"}, {"id": 2}])"), nullptr, "added_tokens");
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.status().message().find("added_tokens[1].content"), std::string::npos) << v.status().message();
}

}  // namespace
}  // namespace keel::tokenizer
