#include "tokenizer/synthetic.h"

#include <gtest/gtest.h>

namespace keel::tokenizer {
namespace {

TEST(SyntheticTokenizer, BytesRoundTripAndHighIdsDecodeAsWords) {
  auto tok = synthetic_tokenizer(1000);
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  EXPECT_EQ(tok->vocab_size(), 1000);
  const std::string text = "Hello, wörld!\n\t\x01";
  const std::vector<int32_t> ids = tok->encode(text, true);
  ASSERT_EQ(ids.size(), text.size());  // no merges: one token per byte
  for (size_t i = 0; i < ids.size(); i++) EXPECT_EQ(ids[i], static_cast<unsigned char>(text[i]));
  EXPECT_EQ(tok->decode(ids, false), text);
  const std::vector<int32_t> words = {256, 999, 'x'};
  EXPECT_EQ(tok->decode(words, true), " w256 w999x");
  EXPECT_TRUE(tok->eos_ids().empty());
}

TEST(SyntheticTokenizer, RefusesAVocabularySmallerThanTheBytes) {
  auto tok = synthetic_tokenizer(100);
  ASSERT_FALSE(tok.ok());
  EXPECT_NE(tok.status().message().find("vocab_size 100"), std::string::npos) << tok.status().message();
}

}  // namespace
}  // namespace keel::tokenizer
