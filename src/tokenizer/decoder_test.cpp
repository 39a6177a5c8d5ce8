#include "tokenizer/decoder.h"

#include <gtest/gtest.h>

namespace keel::tokenizer {
namespace {

std::string decode(const char* json_text, std::vector<std::string> tokens) {
  auto d = parse_decoder(Json::parse(json_text), "decoder");
  EXPECT_TRUE(d.ok()) << d.status().message();
  d.value()->decode_chain(tokens);
  std::string out;
  for (const auto& t : tokens) out += t;
  return out;
}

TEST(ByteLevelDecoder, JoinsBytesAcrossTokensAndReplacesInvalidOnes) {
  const char* j = R"({"type": "ByteLevel"})";
  EXPECT_EQ(decode(j, {"Hello", "\xC4\xA0world"}), "Hello world");
  // "é" split over two tokens: Ã (0xC3) and © (0xA9).
  EXPECT_EQ(decode(j, {"\xC3\x83", "\xC2\xA9"}), "\xC3\xA9");
  EXPECT_EQ(decode(j, {"\xC3\x83"}), "\xEF\xBF\xBD");             // a lone lead byte
  EXPECT_EQ(decode(j, {"<|im_start|>", "a"}), "<|im_start|>a");  // added tokens pass through
}

TEST(ByteFallbackDecoder, InvalidByteRunsGiveOneReplacementPerByte) {
  const char* j = R"({"type": "Sequence", "decoders": [{"type": "ByteFallback"}, {"type": "Fuse"}]})";
  EXPECT_EQ(decode(j, {"a", "<0xC3>", "<0xA9>", "b"}), "a\xC3\xA9"
                                                       "b");
  EXPECT_EQ(decode(j, {"<0xF0>", "<0x9F>", "x"}), "\xEF\xBF\xBD\xEF\xBF\xBDx");
}

TEST(MetaspaceDecoder, TurnsReplacementIntoSpacesAndDropsTheFirstTokensOnes) {
  const char* j = R"({"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always"})";
  EXPECT_EQ(decode(j, {"▁Hey", "▁you"}), "Hey you");
  EXPECT_EQ(decode(R"({"type": "Metaspace", "replacement": "▁", "prepend_scheme": "never"})", {"▁Hey"}), " Hey");
}

TEST(ReplaceAndStripDecoders, RewriteEachToken) {
  EXPECT_EQ(decode(R"({"type": "Replace", "pattern": {"String": "▁"}, "content": " "})", {"▁a▁", "b"}), " a b");
  EXPECT_EQ(decode(R"({"type": "Strip", "content": " ", "start": 1, "stop": 0})", {"  a", " b"}), " ab");
}

TEST(ParseDecoder, StripWithoutContentNamesTheField) {
  auto d = parse_decoder(Json::parse(R"({"type": "Sequence", "decoders": [{"type": "Strip", "start": 1}]})"),
                         "decoder");
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("decoder.decoders[0].content"), std::string::npos) << d.status().message();
}

}  // namespace
}  // namespace keel::tokenizer
