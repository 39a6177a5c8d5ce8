#include "tokenizer/pre_tokenizer.h"

#include <gtest/gtest.h>

namespace keel::tokenizer {
namespace {

std::vector<std::string> run(const char* json_text, const std::string& text) {
  auto p = parse_pre_tokenizer(Json::parse(json_text), "pre_tokenizer");
  EXPECT_TRUE(p.ok()) << p.status().message();
  std::vector<Piece> pieces{{text, true}};
  p.value()->pre_tokenize(pieces);
  std::vector<std::string> out;
  for (const auto& piece : pieces) out.push_back(piece.text);
  return out;
}

using V = std::vector<std::string>;

constexpr const char* kQwenSplit = R"({"type": "Split", "behavior": "Isolated", "invert": false, "pattern": {"Regex":
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}})";

TEST(Split, QwenRegexSplitsContractionsDigitsAndSpaces) {
  EXPECT_EQ(run(kQwenSplit, "I'M here  123!\n\n"), (V{"I", "'M", " here", " ", " ", "1", "2", "3", "!\n\n"}));
}

TEST(Split, WhitespaceIsUnicodeWhiteSpaceAsInOniguruma) {
  // U+3000 is whitespace; U+180E (Mongolian vowel separator) is not, whatever PCRE2's version says.
  EXPECT_EQ(run(kQwenSplit, "a\u3000\u3000b"), (V{"a", "\u3000", "\u3000b"}));
  EXPECT_EQ(run(kQwenSplit, "a \u180Eb"), (V{"a", " \u180E", "b"}));
}

TEST(Split, BehaviorsMatchHuggingFace) {
  auto split = [](const char* behavior) {
    return std::string(R"({"type": "Split", "pattern": {"String": "-"}, "behavior": ")") + behavior + "\"}";
  };
  EXPECT_EQ(run(split("Removed").c_str(), "a-b--c"), (V{"a", "b", "c"}));
  EXPECT_EQ(run(split("Isolated").c_str(), "a-b--c"), (V{"a", "-", "b", "-", "-", "c"}));
  EXPECT_EQ(run(split("MergedWithPrevious").c_str(), "a-b--c"), (V{"a-", "b-", "-", "c"}));
  EXPECT_EQ(run(split("MergedWithNext").c_str(), "a-b--c"), (V{"a", "-b", "-", "-c"}));
  EXPECT_EQ(run(split("Contiguous").c_str(), "a-b--c"), (V{"a", "-", "b", "--", "c"}));
}

TEST(ByteLevel, MapsBytesToTheirPrintableCharacters) {
  EXPECT_EQ(run(R"({"type": "ByteLevel", "add_prefix_space": false, "use_regex": false})", "a b\n"),
            (V{"a\xC4\xA0"
               "b\xC4\x8A"}));
  EXPECT_EQ(run(R"({"type": "ByteLevel", "add_prefix_space": true, "use_regex": true})", "hi there"),
            (V{"\xC4\xA0hi", "\xC4\xA0there"}));
}

TEST(Metaspace, ReplacesSpacesAndSplitsBeforeThem) {
  EXPECT_EQ(run(R"({"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true})", "a b  c"),
            (V{"▁a", "▁b", "▁", "▁c"}));
  EXPECT_EQ(run(R"({"type": "Metaspace", "replacement": "▁", "prepend_scheme": "never", "split": false})", "a b"),
            (V{"a▁b"}));
}

TEST(Digits, IsolatesDigitsOneByOneOrAsRuns) {
  EXPECT_EQ(run(R"({"type": "Digits", "individual_digits": true})", "a123b"), (V{"a", "1", "2", "3", "b"}));
  EXPECT_EQ(run(R"({"type": "Digits", "individual_digits": false})", "a123b4"), (V{"a", "123", "b", "4"}));
}

TEST(ParsePreTokenizer, BadRegexNamesThePatternField) {
  auto p = parse_pre_tokenizer(
      Json::parse(R"({"type": "Sequence", "pretokenizers": [{"type": "Split", "behavior": "Isolated",
                     "pattern": {"Regex": "(unclosed"}}]})"),
      "pre_tokenizer");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("pre_tokenizer.pretokenizers[0].pattern"), std::string::npos)
      << p.status().message();
}

TEST(ParsePreTokenizer, UnknownBehaviorIsAnError) {
  auto p = parse_pre_tokenizer(Json::parse(R"({"type": "Split", "pattern": {"String": " "}, "behavior": "Sideways"})"),
                               "pre_tokenizer");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("pre_tokenizer.behavior"), std::string::npos) << p.status().message();
}

}  // namespace
}  // namespace keel::tokenizer
