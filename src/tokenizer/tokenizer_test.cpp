// The Tokenizer on a small byte-level tokenizer.json written here, and its load errors.
#include "tokenizer/tokenizer.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <thread>

#include "tokenizer/stream_decoder.h"
#include "tokenizer/unicode.h"

namespace keel::tokenizer {
namespace {

using nlohmann::json;

// Vocab: the 256 byte characters (id = byte value), then "ab" = 256, "Ġa" = 257; two added tokens.
json tiny_tokenizer() {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_to_char()[b]] = b;
  vocab["ab"] = 256;
  vocab["\xC4\xA0" "a"] = 257;
  return json{
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"post_processor", {{"type", "TemplateProcessing"},
                          {"single", json::array({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                                  {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
                          {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {300}}, {"tokens", {"<s>"}}}}}}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array({"a b", "\xC4\xA0 a"})}}},
      {"added_tokens", json::array({{{"id", 300}, {"content", "<s>"}, {"special", true}, {"normalized", false}},
                                    {{"id", 301}, {"content", "<tool>"}, {"special", false}, {"normalized", false}}})},
  };
}

Tokenizer load_tiny() {
  auto t = Tokenizer::from_json(tiny_tokenizer().dump(), R"({"bos_token": "<s>", "eos_token": {"content": "<s>"}})",
                                R"({"eos_token_id": [255, 300]})");
  EXPECT_TRUE(t.ok()) << t.status().message();
  return std::move(t).value();
}

using Ids = std::vector<int32_t>;

TEST(Tokenizer, EncodesWithMergesAndRecognisesAddedTokensInText) {
  Tokenizer tok = load_tiny();
  EXPECT_EQ(tok.encode("ab a", false), (Ids{256, 257}));
  EXPECT_EQ(tok.encode("<s>ab<tool>", false), (Ids{300, 256, 301}));
  EXPECT_EQ(tok.encode("ab", true), (Ids{300, 256}));  // the template's <s>
}

TEST(Tokenizer, DecodeSkipsOnlySpecialTokensWhenAsked) {
  Tokenizer tok = load_tiny();
  Ids ids{300, 256, 301, 257};
  EXPECT_EQ(tok.decode(ids, false), "<s>ab<tool> a");
  EXPECT_EQ(tok.decode(ids, true), "ab<tool> a");
  EXPECT_EQ(tok.decode(Ids{256, 999999}, false), "ab");  // unknown ids are skipped
}

TEST(Tokenizer, InvalidUtf8InputIsReadAsReplacementCharacters) {
  Tokenizer tok = load_tiny();
  EXPECT_EQ(tok.encode("a\xFF", false), tok.encode("a\xEF\xBF\xBD", false));
}

TEST(Tokenizer, ReportsSpecialIdsFromTheConfigs) {
  Tokenizer tok = load_tiny();
  EXPECT_EQ(tok.bos_id(), 300);
  EXPECT_EQ(tok.eos_ids(), (Ids{255, 300}));
  EXPECT_EQ(tok.bos_token(), "<s>");
  EXPECT_EQ(tok.vocab_size(), 302);
  EXPECT_EQ(tok.token_to_id("<tool>"), 301);
  EXPECT_EQ(tok.id_to_token(256), "ab");
  EXPECT_TRUE(tok.is_special(300));
  EXPECT_FALSE(tok.is_special(301));
}

TEST(Tokenizer, EncodesTheSameFromManyThreadsAtOnce) {
  Tokenizer tok = load_tiny();
  std::vector<std::string> texts;
  for (int i = 0; i < 200; ++i) texts.push_back("ab a " + std::to_string(i) + " <s>x\xC3\xA9 " + std::string(i % 7, 'a'));
  std::vector<Ids> expected;
  for (const auto& t : texts) expected.push_back(tok.encode(t, false));
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      for (int round = 0; round < 20; ++round) {
        for (size_t i = k; i < texts.size(); i += 1 + k) mismatches += tok.encode(texts[i], false) != expected[i];
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(StreamDecoder, NeverEmitsPartOfACharacter) {
  Tokenizer tok = load_tiny();
  // "é😀" as single-byte tokens: each step may only emit whole characters.
  std::string text = "x\xC3\xA9\xF0\x9F\x98\x80y";
  StreamDecoder stream(tok, false);
  std::string all;
  std::vector<std::string> pieces;
  for (unsigned char b : text) {
    std::string piece = stream.step(b);
    EXPECT_TRUE(is_valid_utf8(piece)) << json(piece).dump();
    all += piece;
    pieces.push_back(piece);
  }
  all += stream.flush();
  EXPECT_EQ(all, text);
  EXPECT_EQ(pieces[1], "");  // 0xC3 alone
  EXPECT_EQ(pieces[2], "\xC3\xA9");
  EXPECT_EQ(pieces[6], "\xF0\x9F\x98\x80");
}

TEST(StreamDecoder, GivesUpOnBytesThatNeverFormACharacter) {
  Tokenizer tok = load_tiny();
  StreamDecoder stream(tok, false);
  std::string all;
  for (int32_t id : Ids{0xF0, 0x9F, 'a', 'b', 'c', 'd'}) all += stream.step(id);
  all += stream.flush();
  EXPECT_EQ(all, tok.decode(Ids{0xF0, 0x9F, 'a', 'b', 'c', 'd'}, false));
}

TEST(TokenizerLoad, BadFieldsAreNamed) {
  json j = tiny_tokenizer();
  j["model"]["merges"].push_back("a zz");
  auto t = Tokenizer::from_json(j.dump());
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("tokenizer.json: model.merges[2]"), std::string::npos) << t.status().message();

  j = tiny_tokenizer();
  j["pre_tokenizer"] = {{"type", "Whitespace"}};
  t = Tokenizer::from_json(j.dump());
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), Code::kUnsupported);
  EXPECT_NE(t.status().message().find("pre_tokenizer.type"), std::string::npos) << t.status().message();

  j = tiny_tokenizer();
  j["added_tokens"][0]["special"] = "yes";
  t = Tokenizer::from_json(j.dump());
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("added_tokens[0].special"), std::string::npos) << t.status().message();

  t = Tokenizer::from_json("{not json");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("tokenizer.json"), std::string::npos);
}

TEST(TokenizerLoad, MissingDirectoryIsNotFound) {
  auto t = Tokenizer::load("/nonexistent/keel-test");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), Code::kNotFound);
  EXPECT_NE(t.status().message().find("/nonexistent/keel-test"), std::string::npos);
}

}  // namespace
}  // namespace keel::tokenizer
