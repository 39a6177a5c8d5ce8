#include "tokenizer/unicode.h"

#include <gtest/gtest.h>

namespace keel::tokenizer {
namespace {

TEST(Utf8Lossy, ReplacesEachMaximalInvalidSubpartWithOneReplacementCharacter) {
  EXPECT_EQ(utf8_lossy("abc"), "abc");
  EXPECT_EQ(utf8_lossy("a\xF0\x9F\x98"), "a\xEF\xBF\xBD");                        // truncated emoji: one U+FFFD
  EXPECT_EQ(utf8_lossy("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // a surrogate: three
  EXPECT_EQ(utf8_lossy("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");                  // overlong
  EXPECT_EQ(utf8_lossy("\xE2\x82x"), "\xEF\xBF\xBDx");
  EXPECT_EQ(utf8_lossy("\xFF"), "\xEF\xBF\xBD");
}

TEST(Utf8, ValidityFollowsTheStandard) {
  EXPECT_TRUE(is_valid_utf8("h\xC3\xA9llo \xF0\x9F\x98\x80"));
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(is_valid_utf8("\xE2\x82"));          // truncated
}

TEST(ByteLevelAlphabet, MapsEveryByteToADistinctPrintableCharacterAndBack) {
  const auto& table = byte_to_char();
  EXPECT_EQ(table[' '], "\xC4\xA0");  // Ġ
  EXPECT_EQ(table['\n'], "\xC4\x8A");  // Ċ
  EXPECT_EQ(table['A'], "A");
  for (int b = 0; b < 256; ++b) {
    size_t i = 0;
    EXPECT_EQ(char_to_byte(next_char(table[b], i)), b);
  }
  EXPECT_EQ(char_to_byte(U'€'), -1);
}

TEST(UnicodeClasses, WhitespaceAndWordCharactersFollowRust) {
  EXPECT_TRUE(is_whitespace(U'\u3000'));
  EXPECT_TRUE(is_whitespace(U'\u0085'));
  EXPECT_FALSE(is_whitespace(U'\u200B'));
  EXPECT_TRUE(is_word_char(U'é'));
  EXPECT_TRUE(is_word_char(U'_'));
  EXPECT_TRUE(is_word_char(U'\u0301'));
  EXPECT_FALSE(is_word_char(U'-'));
}

}  // namespace
}  // namespace keel::tokenizer
