// n > 1 on the OpenAI routes: n choices indexed 0..n-1, whole and streamed, each with its own seed, every choice
// after the first submitted to wait for the first's prefill (the engine then shares the prompt's blocks).
#include <gtest/gtest.h>

#include <map>

#include "server/server_test_util.h"

namespace keel::server {
namespace {

using namespace http_test;
using nlohmann::json;

TEST(Choices, ChatAnswersNChoicesEachWithItsOwnSeedAndTheFirstsPrefill) {
  TestServer s;
  auto c = s.client();
  int status = 0;
  json j = json::parse(post_json(c, "/v1/chat/completions", chat_body({{"n", 3}, {"seed", 40}}), &status));
  ASSERT_EQ(status, 200) << j.dump();
  ASSERT_EQ(j["choices"].size(), 3u);
  for (int i = 0; i < 3; i++) {
    EXPECT_EQ(j["choices"][i]["index"], i);
    EXPECT_EQ(j["choices"][i]["message"]["content"], s.generator.script);
    EXPECT_EQ(j["choices"][i]["finish_reason"], "stop");
  }
  // The prompt counted once, the completions summed.
  EXPECT_EQ(j["usage"]["prompt_tokens"], chat_prompt_tokens(s, "Hi"));
  EXPECT_EQ(j["usage"]["completion_tokens"], 3 * (s.generator.script.size() + 1));
  std::vector<engine::Request> sent = s.generator.submitted();
  ASSERT_EQ(sent.size(), 3u);
  for (size_t i = 0; i < 3; i++) {
    EXPECT_EQ(sent[i].sampling.seed, 40u + i);
    EXPECT_EQ(sent[i].prompt, sent[0].prompt);
    EXPECT_EQ(sent[i].prefill_after, i == 0 ? 0u : 1u);  // the first request's generator id
  }
}

TEST(Choices, CompletionsStreamEveryChoiceByIndexThenUsageOnce) {
  TestServer s;
  auto c = s.client();
  int status = 0;
  json body{{"prompt", "abc"}, {"n", 4}, {"max_tokens", 5}, {"stream", true},
            {"stream_options", {{"include_usage", true}}}};
  std::string out = post_json(c, "/v1/completions", body, &status);
  ASSERT_EQ(status, 200) << out;
  std::vector<SseEvent> events = parse_sse(out);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().data, "[DONE]");
  std::map<int, std::string> text;
  std::map<int, std::string> finish;
  int usage_chunks = 0;
  for (size_t i = 0; i + 1 < events.size(); i++) {
    json chunk = json::parse(events[i].data);
    if (chunk["choices"].empty()) {
      usage_chunks++;
      EXPECT_EQ(i + 2, events.size()) << "the usage chunk comes last, after every choice's finish";
      EXPECT_EQ(chunk["usage"]["completion_tokens"], 4 * 5);
      continue;
    }
    const json& choice = chunk["choices"][0];
    const int index = choice["index"];
    EXPECT_EQ(finish.count(index), 0u) << "text after choice " << index << " finished";
    text[index] += choice["text"].get<std::string>();
    if (!choice["finish_reason"].is_null()) finish[index] = choice["finish_reason"];
  }
  EXPECT_EQ(usage_chunks, 1);
  ASSERT_EQ(text.size(), 4u);
  for (int i = 0; i < 4; i++) {
    EXPECT_EQ(text[i], s.generator.script.substr(0, 5));
    EXPECT_EQ(finish[i], "length");
  }
}

TEST(Choices, ChatStreamStartsEveryChoiceWithItsRole) {
  TestServer s;
  auto c = s.client();
  int status = 0;
  std::string out = post_json(c, "/v1/chat/completions", chat_body({{"n", 2}, {"stream", true}}), &status);
  ASSERT_EQ(status, 200);
  std::vector<SseEvent> events = parse_sse(out);
  ASSERT_GE(events.size(), 3u);
  for (int i = 0; i < 2; i++) {
    json chunk = json::parse(events[i].data);
    EXPECT_EQ(chunk["choices"][0]["index"], i);
    EXPECT_EQ(chunk["choices"][0]["delta"]["role"], "assistant");
  }
  std::map<int, std::string> text;
  for (size_t i = 2; i + 1 < events.size(); i++) {
    json chunk = json::parse(events[i].data);
    text[chunk["choices"][0]["index"]] += chunk["choices"][0]["delta"].value("content", "");
  }
  EXPECT_EQ(text[0], s.generator.script);
  EXPECT_EQ(text[1], s.generator.script);
}

TEST(Choices, NAboveTheBoundOrBelowOneIsA400NamingN) {
  TestServer s;
  auto c = s.client();
  for (int n : {0, kMaxChoices + 1}) {
    int status = 0;
    std::string out = post_json(c, "/v1/chat/completions", chat_body({{"n", n}}), &status);
    EXPECT_EQ(status, 400) << n;
    expect_openai_error(out, "n");
  }
  EXPECT_TRUE(s.generator.submitted().empty());
}

}  // namespace
}  // namespace keel::server

namespace keel::server {
namespace {

using namespace http_test;
using nlohmann::json;

// echo + logprobs: the prompt's tokens come first, the first with null logprob and alternatives, then the
// completion's; text_offset runs over both. The numbers are the generator's (the fake's -i/10 for prompt token i).
TEST(EchoLogprobs, ThePromptsTokensComeFirstTheFirstWithNull) {
  TestServer s;
  auto c = s.client();
  int status = 0;
  json j = json::parse(post_json(c, "/v1/completions",
                                 {{"prompt", "abcd"}, {"echo", true}, {"logprobs", 2}, {"max_tokens", 3}}, &status));
  ASSERT_EQ(status, 200) << j.dump();
  EXPECT_EQ(s.generator.last().prompt_logprobs, 2);
  const json& choice = j["choices"][0];
  EXPECT_EQ(choice["text"], "abcd" + s.generator.script.substr(0, 3));
  const json& lp = choice["logprobs"];
  ASSERT_EQ(lp["tokens"].size(), 4u + 3u);
  EXPECT_EQ(lp["tokens"][0], "a");
  EXPECT_TRUE(lp["token_logprobs"][0].is_null());
  EXPECT_TRUE(lp["top_logprobs"][0].is_null());
  for (int i = 1; i < 4; i++) {
    EXPECT_EQ(lp["tokens"][i], std::string(1, "abcd"[i]));
    EXPECT_NEAR(lp["token_logprobs"][i].get<double>(), -0.1 * i, 1e-6);
    EXPECT_EQ(lp["top_logprobs"][i].size(), 2u);
  }
  for (int i = 0; i < 3; i++) EXPECT_EQ(lp["tokens"][4 + i], std::string(1, s.generator.script[i]));
  for (int i = 0; i < 7; i++) EXPECT_EQ(lp["text_offset"][i], i);
}

TEST(EchoLogprobs, AStreamSendsTheEchoWithItsLogprobsBeforeTheCompletion) {
  TestServer s;
  auto c = s.client();
  int status = 0;
  std::string out = post_json(c, "/v1/completions",
                              {{"prompt", "abc"}, {"echo", true}, {"logprobs", 0}, {"max_tokens", 2}, {"stream", true}},
                              &status);
  ASSERT_EQ(status, 200);
  std::vector<SseEvent> events = parse_sse(out);
  ASSERT_GE(events.size(), 3u);
  json first = json::parse(events[0].data)["choices"][0];
  EXPECT_EQ(first["text"], "abc");
  EXPECT_EQ(first["logprobs"]["tokens"], json({"a", "b", "c"}));
  EXPECT_TRUE(first["logprobs"]["token_logprobs"][0].is_null());
  std::string completion;
  for (size_t i = 1; i + 1 < events.size(); i++) {
    json chunk = json::parse(events[i].data);
    if (!chunk["choices"].empty()) completion += chunk["choices"][0]["text"].get<std::string>();
  }
  EXPECT_EQ(completion, s.generator.script.substr(0, 2));
}

TEST(EchoLogprobs, OnlyTheFirstOfNChoicesAsksForThePromptsLogprobs) {
  TestServer s;
  auto c = s.client();
  int status = 0;
  json j = json::parse(post_json(c, "/v1/completions",
                                 {{"prompt", "abc"}, {"echo", true}, {"logprobs", 1}, {"max_tokens", 2}, {"n", 2}},
                                 &status));
  ASSERT_EQ(status, 200) << j.dump();
  std::vector<engine::Request> sent = s.generator.submitted();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0].prompt_logprobs, 1);
  EXPECT_EQ(sent[1].prompt_logprobs, -1);
  for (int i = 0; i < 2; i++) {
    const json& lp = j["choices"][i]["logprobs"];
    EXPECT_EQ(lp["tokens"].size(), 5u);
    EXPECT_NEAR(lp["token_logprobs"][2].get<double>(), -0.2, 1e-6);
  }
}

}  // namespace
}  // namespace keel::server
