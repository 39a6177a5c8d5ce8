// keel against HF `tokenizers` on the real Qwen3, Llama 3 and Gemma 3 tokenizer files (`make tokenizers`),
// with the goldens written by tests/golden/gen_tokenizers.py.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>

#include "env/env.h"
#include "tokenizer/stream_decoder.h"
#include "tokenizer/tokenizer.h"

namespace keel::tokenizer {
namespace {

using nlohmann::json;

std::string npm_dir(const std::string& name) {
  return std::string(KEEL_SOURCE_DIR) + "/.npm-tokenizers/" + name + "/package/models";
}

// Loading Gemma's 33 MB tokenizer.json takes a while: each tokenizer is loaded once per process.
const Tokenizer* shared_tokenizer(const std::string& name) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  auto it = cache.find(name);
  if (it != cache.end()) return it->second.get();
  auto tok = Tokenizer::load(npm_dir(name));
  if (!tok.ok()) {
    ADD_FAILURE() << tok.status().message();
    return nullptr;
  }
  return (cache[name] = std::make_unique<Tokenizer>(std::move(tok).value())).get();
}

// $KEEL_TOKENIZER_GOLDENS points at other goldens of the same format (tests/golden/fuzz_tokenizers.js).
json goldens(const std::string& name) {
  const char* dir = std::getenv("KEEL_TOKENIZER_GOLDENS");
  std::string root = dir != nullptr ? dir : std::string(KEEL_SOURCE_DIR) + "/tests/golden/tokenizers";
  auto text = env::Env::posix()->read_file(root + "/" + name + ".json");
  if (!text.ok()) return json();
  return json::parse(text.value());
}

std::string show(const std::string& s) { return json(s).dump(); }

class Golden : public ::testing::TestWithParam<std::string> {};

TEST_P(Golden, EncodeMatchesHuggingFaceWithAndWithoutSpecialTokens) {
  const Tokenizer* tok = shared_tokenizer(GetParam());
  ASSERT_NE(tok, nullptr);
  json g = goldens(GetParam());
  ASSERT_TRUE(g.contains("cases"));
  ASSERT_GE(g["cases"].size(), 100u);
  size_t failed = 0;
  for (const json& c : g["cases"]) {
    std::string text = c["text"];
    auto ids = tok->encode(text, false);
    auto ids_special = tok->encode(text, true);
    if (ids != c["ids"].get<std::vector<int32_t>>()) {
      ++failed;
      ADD_FAILURE() << "text " << show(text) << "\n  keel " << json(ids).dump() << "\n  HF   " << c["ids"].dump();
    } else {
      EXPECT_EQ(ids_special, c["ids_special"].get<std::vector<int32_t>>()) << show(text);
    }
  }
  EXPECT_EQ(failed, 0u) << "of " << g["cases"].size();
  std::printf("[ golden   ] %s: %zu/%zu texts encode as HF does\n", GetParam().c_str(), g["cases"].size() - failed,
              g["cases"].size());
}

TEST_P(Golden, DecodeMatchesHuggingFace) {
  const Tokenizer* tok = shared_tokenizer(GetParam());
  ASSERT_NE(tok, nullptr);
  json g = goldens(GetParam());
  for (const json& c : g["cases"]) {
    auto ids = c["ids_special"].get<std::vector<int32_t>>();
    EXPECT_EQ(tok->decode(ids, false), c["decoded"].get<std::string>()) << show(c["text"]);
    EXPECT_EQ(tok->decode(ids, true), c["decoded_skip"].get<std::string>()) << show(c["text"]);
  }
  for (const json& c : g["decode_cases"]) {
    auto ids = c["ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(tok->decode(ids, false), c["decoded"].get<std::string>()) << c["ids"].dump();
    EXPECT_EQ(tok->decode(ids, true), c["decoded_skip"].get<std::string>()) << c["ids"].dump();
  }
}

TEST_P(Golden, StreamingDecodeConcatenatesToTheFullDecode) {
  const Tokenizer* tok = shared_tokenizer(GetParam());
  ASSERT_NE(tok, nullptr);
  json g = goldens(GetParam());
  for (const json& c : g["cases"]) {
    auto ids = c["ids_special"].get<std::vector<int32_t>>();
    for (bool skip : {false, true}) {
      StreamDecoder stream(*tok, skip);
      std::string all;
      for (int32_t id : ids) all += stream.step(id);
      all += stream.flush();
      EXPECT_EQ(all, c[skip ? "decoded_skip" : "decoded"].get<std::string>()) << show(c["text"]);
    }
  }
}

// token_bytes (what grammars match tokens against): a text's tokens' bytes, joined, are HF's decode of them
// wherever that decode is valid UTF-8 (byte-level tokens may split a character; joined they must not).
TEST_P(Golden, TokenBytesJoinToTheDecodedText) {
  const Tokenizer* tok = shared_tokenizer(GetParam());
  ASSERT_NE(tok, nullptr);
  json g = goldens(GetParam());
  size_t checked = 0;
  for (const json& c : g["cases"]) {
    const std::string decoded = c["decoded"];
    if (decoded.find("\xEF\xBF\xBD") != std::string::npos) continue;  // U+FFFD: invalid bytes repaired by decode
    std::string joined;
    for (int32_t id : c["ids_special"].get<std::vector<int32_t>>()) joined += tok->token_bytes(id);
    // A SentencePiece decoder strips the text's leading space; token_bytes is of tokens inside a text.
    if (!decoded.starts_with(" ") && joined.starts_with(" ")) joined.erase(0, 1);
    EXPECT_EQ(joined, decoded) << show(c["text"]);
    checked++;
  }
  EXPECT_GT(checked, 50u);
}

INSTANTIATE_TEST_SUITE_P(RealTokenizers, Golden, ::testing::Values("qwen3", "llama3", "gemma3"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace keel::tokenizer
