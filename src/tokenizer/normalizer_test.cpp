#include "tokenizer/normalizer.h"

#include <gtest/gtest.h>
#include <utf8proc.h>

#include <cstdlib>
#include <random>

#include "tokenizer/unicode.h"

namespace keel::tokenizer {
namespace {

std::unique_ptr<Normalizer> make(const char* json_text) {
  auto n = parse_normalizer(Json::parse(json_text), "normalizer");
  EXPECT_TRUE(n.ok()) << n.status().message();
  return n.ok() ? std::move(n).value() : nullptr;
}

std::string full_nfc(const std::string& s) {
  utf8proc_uint8_t* out = nullptr;
  auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()), static_cast<utf8proc_ssize_t>(s.size()),
                        &out, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  std::string r(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
  std::free(out);
  return r;
}

TEST(Nfc, ComposesDecomposedText) {
  auto nfc = make(R"({"type": "NFC"})");
  std::string s = "cafe\xCC\x81 A\xCC\x8A \xE2\x84\xAB";  // e + acute, A + ring, Angstrom sign
  nfc->normalize(s);
  EXPECT_EQ(s, "caf\xC3\xA9 \xC3\x85 \xC3\x85");
}

TEST(Nfc, HangulTBaseDoesNotJoinTheSyllableBeforeIt) {
  auto nfc = make(R"({"type": "NFC"})");
  std::string s = "\xEC\x96\xB4\xE1\x86\xA7";  // 어 U+11A7
  nfc->normalize(s);
  EXPECT_EQ(s, "\xEC\x96\xB4\xE1\x86\xA7");
  std::string jamo = "\xE1\x84\x8B\xE1\x85\xA5\xE1\x86\xA8";  // ᄋ ᅥ ᆨ compose to 억
  nfc->normalize(jamo);
  EXPECT_EQ(jamo, "\xEC\x96\xB5");
}

TEST(Nfc, CharactersNewerThanUnicode9AreLeftWhereTheyAreAsHfDoes) {
  auto nfc = make(R"({"type": "NFC"})");
  // U+09FE (Unicode 11, class 230) before U+09CD (class 9): Unicode 14 would swap them, HF does not.
  std::string s = "\xE0\xA6\xB6\xE0\xA7\xBE\xE0\xA7\x8D";
  nfc->normalize(s);
  EXPECT_EQ(s, "\xE0\xA6\xB6\xE0\xA7\xBE\xE0\xA7\x8D");
}

// Normalizing only around unstable characters must equal normalizing everything.
TEST(Nfc, LocalNormalizationEqualsWholeTextNormalizationOnRandomText) {
  auto nfc = make(R"({"type": "NFC"})");
  const char32_t alphabet[] = {U'a', U'e', U' ', U'ä', U'é', U'\u0301', U'\u0308', U'\u0323', U'\u0302', U'и',
                               U'\u0306', U'й', U'\u1100', U'\u1161', U'\u11A8', U'한', U'가', U'\u212B', U'\u2126',
                               U'\u0958', U'\u0915', U'\u093C', U'\u0CC6', U'\u0CD5', U'か', U'\u3099', U'が',
                               U'中', U'😀', U'\u0345', U'\u1E9B', U'ﬁ', U'\U0001D15E', U'\u0F73', U'\u0B47',
                               U'\u0B3E', U'\u0DD9', U'\u0DCF', U'A', U'\u030A'};
  std::mt19937 rng(7);
  for (int trial = 0; trial < 3000; ++trial) {
    std::string s;
    int n = 1 + static_cast<int>(rng() % 12);
    for (int i = 0; i < n; ++i) append_utf8(s, alphabet[rng() % std::size(alphabet)]);
    std::string mine = s;
    nfc->normalize(mine);
    ASSERT_EQ(mine, full_nfc(s)) << "input " << Json(s).dump();
  }
}

TEST(Replace, ReplacesEveryLiteralOccurrence) {
  auto r = make(R"({"type": "Replace", "pattern": {"String": " "}, "content": "▁"})");
  std::string s = " a  b ";
  r->normalize(s);
  EXPECT_EQ(s, "▁a▁▁b▁");
}

TEST(Sequence, AppliesPrependThenReplaceInOrder) {
  auto seq = make(R"({"type": "Sequence", "normalizers": [
      {"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]})");
  std::string s = "Hey you";
  seq->normalize(s);
  EXPECT_EQ(s, "▁Hey▁you");
  std::string empty;
  seq->normalize(empty);
  EXPECT_EQ(empty, "");  // Prepend leaves empty text empty
}

TEST(ParseNormalizer, UnknownTypeIsUnsupportedAndNamesThePath) {
  auto n = parse_normalizer(Json::parse(R"({"type": "Sequence", "normalizers": [{"type": "BertNormalizer"}]})"),
                            "normalizer");
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.status().code(), Code::kUnsupported);
  EXPECT_NE(n.status().message().find("normalizer.normalizers[0].type"), std::string::npos) << n.status().message();
}

TEST(ParseNormalizer, ReplaceWithoutContentNamesTheField) {
  auto n = parse_normalizer(Json::parse(R"({"type": "Replace", "pattern": {"String": " "}})"), "normalizer");
  ASSERT_FALSE(n.ok());
  EXPECT_NE(n.status().message().find("normalizer.content"), std::string::npos) << n.status().message();
}

}  // namespace
}  // namespace keel::tokenizer
