#include "server/server.h"

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <chrono>
#include <thread>

#include "server/server_test_util.h"

namespace keel::server {
namespace {

using namespace http_test;

using nlohmann::json;
using namespace std::chrono_literals;

TEST(Server, HealthAnswersOk) {
  TestServer s;
  auto c = s.client();
  auto res = c.Get("/health");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(json::parse(res->body)["status"], "ok");
}

TEST(Server, ModelsListsTheServedModel) {
  TestServer s;
  auto c = s.client();
  auto res = c.Get("/v1/models");
  ASSERT_TRUE(res);
  json j = json::parse(res->body);
  EXPECT_EQ(j["object"], "list");
  ASSERT_EQ(j["data"].size(), 1u);
  EXPECT_EQ(j["data"][0]["id"], "test-model");
  EXPECT_EQ(j["data"][0]["object"], "model");
  auto one = c.Get("/v1/models/test-model");
  ASSERT_TRUE(one);
  EXPECT_EQ(one->status, 200);
  auto missing = c.Get("/v1/models/other");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  expect_openai_error(missing->body);
}

TEST(Server, ChatCompletionReturnsTheTextFinishReasonAndExactUsage) {
  TestServer s;
  auto c = s.client();
  int status = 0;
  json j = json::parse(post_json(c, "/v1/chat/completions", chat_body(), &status));
  ASSERT_EQ(status, 200) << j.dump();
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["model"], "test-model");
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(j["choices"][0]["message"]["content"], s.generator.script);
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(j["usage"]["prompt_tokens"], chat_prompt_tokens(s, "Hi"));
  EXPECT_EQ(j["usage"]["completion_tokens"], s.generator.script.size() + 1);  // and the end-of-sequence token
  EXPECT_EQ(j["usage"]["total_tokens"],
            j["usage"]["prompt_tokens"].get<int>() + j["usage"]["completion_tokens"].get<int>());
  EXPECT_EQ(j["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
}

TEST(Server, UsageReportsPromptTokensFromThePrefixCache) {
  TestServer s;
  s.generator.cached_tokens = 4;
  auto c = s.client();
  int status = 0;
  json j = json::parse(post_json(c, "/v1/chat/completions", chat_body(), &status));
  ASSERT_EQ(status, 200) << j.dump();
  EXPECT_EQ(j["usage"]["prompt_tokens"], chat_prompt_tokens(s, "Hi"));  // cached tokens are prompt tokens too
  EXPECT_EQ(j["usage"]["prompt_tokens_details"]["cached_tokens"], 4);
  j = json::parse(post_json(c, "/v1/completions", {{"prompt", "abcdef"}, {"max_tokens", 3}}, &status));
  EXPECT_EQ(j["usage"]["prompt_tokens_details"]["cached_tokens"], 4);

  // Anthropic counts cache reads apart from input_tokens.
  json body{{"model", "test-model"}, {"max_tokens", 5}, {"messages", {{{"role", "user"}, {"content", "Hi"}}}}};
  j = json::parse(post_json(c, "/v1/messages", body, &status));
  ASSERT_EQ(status, 200) << j.dump();
  EXPECT_EQ(j["usage"]["cache_read_input_tokens"], 4);
  EXPECT_EQ(j["usage"]["cache_creation_input_tokens"], 0);
  EXPECT_EQ(j["usage"]["input_tokens"].get<int>() + 4, static_cast<int>(chat_prompt_tokens(s, "Hi")));
  body["stream"] = true;
  auto events = parse_sse(post_json(c, "/v1/messages", body, &status));
  bool saw_delta = false;
  for (auto& e : events) {
    if (e.event != "message_delta") continue;
    json d = json::parse(e.data);
    EXPECT_EQ(d["usage"]["cache_read_input_tokens"], 4);
    EXPECT_EQ(d["usage"]["input_tokens"].get<int>() + 4, static_cast<int>(chat_prompt_tokens(s, "Hi")));
    saw_delta = true;
  }
  EXPECT_TRUE(saw_delta);
}

TEST(Server, ChatPassesTemplateKwargsAndSamplingFields) {
  TestServer s;
  auto c = s.client();
  int status = 0;
  json body = chat_body({{"chat_template_kwargs", {{"enable_thinking", false}}},
                         {"temperature", 0.5},
                         {"top_p", 0.9},
                         {"top_k", 40},
                         {"min_p", 0.05},
                         {"seed", 7},
                         {"presence_penalty", 0.5},
                         {"frequency_penalty", 0.25},
                         {"repetition_penalty", 1.1},
                         {"max_completion_tokens", 3}});
  json j = json::parse(post_json(c, "/v1/chat/completions", body, &status));
  ASSERT_EQ(status, 200) << j.dump();
  engine::Request r = s.generator.last();
  std::string expected = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n";
  EXPECT_EQ(r.prompt, s.tokenizer().encode(expected, false));
  EXPECT_FLOAT_EQ(r.sampling.temperature, 0.5f);
  EXPECT_FLOAT_EQ(r.sampling.top_p, 0.9f);
  EXPECT_EQ(r.sampling.top_k, 40);
  EXPECT_FLOAT_EQ(r.sampling.min_p, 0.05f);
  EXPECT_EQ(r.sampling.seed, 7u);
  EXPECT_FLOAT_EQ(r.sampling.presence_penalty, 0.5f);
  EXPECT_FLOAT_EQ(r.sampling.frequency_penalty, 0.25f);
  EXPECT_FLOAT_EQ(r.sampling.repetition_penalty, 1.1f);
  EXPECT_EQ(r.max_tokens, 3);
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["choices"][0]["message"]["content"], "Hel");
}

// logit_bias reaches the engine as a field of the sampling parameters (TokenChooser applies it); ids outside the
// vocabulary and biases outside [-100, 100] are 400s naming the field.
TEST(Server, LogitBiasIsPassedToTheEngine) {
  TestServer s;
  auto c = s.client();
  int status = 0;
  json j = json::parse(post_json(c, "/v1/completions",
                                 {{"prompt", "ab"}, {"max_tokens", 2}, {"logit_bias", {{"65", 100}, {"7", -100}}}},
                                 &status));
  ASSERT_EQ(status, 200) << j.dump();
  auto bias = s.generator.last().sampling.logit_bias;
  std::sort(bias.begin(), bias.end());
  EXPECT_EQ(bias, (std::vector<std::pair<int32_t, float>>{{7, -100.0f}, {65, 100.0f}}));
  for (const json& bad : {json{{"999999", 1}}, json{{"65", 101}}, json{{"x", 1}}, json{{"65", "up"}}, json(3)}) {
    std::string body = post_json(c, "/v1/chat/completions", chat_body({{"logit_bias", bad}}), &status);
    EXPECT_EQ(status, 400) << bad.dump() << " " << body;
    EXPECT_EQ(json::parse(body)["error"]["param"], "logit_bias") << body;
  }
}

TEST(Server, MaxTokensDefaultsToWhatTheContextLeaves) {
  TestServer s;
  auto c = s.client();
  int status = 0;
  post_json(c, "/v1/chat/completions", chat_body(), &status);
  ASSERT_EQ(status, 200);
  EXPECT_EQ(s.generator.last().max_tokens, s.generator.max_len - static_cast<int>(chat_prompt_tokens(s, "Hi")));
}

TEST(Server, ChatStreamFramesChunksAsTheOpenAIClientExpects) {
  TestServer s;
  s.generator.script = "h\xC3\xA9llo \xE4\xB8\x96\xE7\x95\x8C";  // multi-byte characters split over tokens
  auto c = s.client();
  int status = 0;
  std::string body = post_json(c, "/v1/chat/completions",
                               chat_body({{"stream", true}, {"stream_options", {{"include_usage", true}}}}), &status);
  ASSERT_EQ(status, 200) << body;
  auto events = parse_sse(body);
  ASSERT_GE(events.size(), 4u);
  EXPECT_EQ(events.back().data, "[DONE]");
  std::string text;
  json first = json::parse(events[0].data);
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  std::string finish;
  for (size_t i = 0; i + 2 < events.size(); ++i) {
    json chunk = json::parse(events[i].data);
    EXPECT_EQ(chunk["id"], first["id"]);
    EXPECT_TRUE(chunk.contains("usage") && chunk["usage"].is_null());
    ASSERT_EQ(chunk["choices"].size(), 1u);
    const json& delta = chunk["choices"][0]["delta"];
    if (delta.contains("content")) text += delta["content"].get<std::string>();
    if (!chunk["choices"][0]["finish_reason"].is_null()) finish = chunk["choices"][0]["finish_reason"];
  }
  EXPECT_EQ(text, s.generator.script);
  EXPECT_EQ(finish, "stop");
  json usage_chunk = json::parse(events[events.size() - 2].data);
  EXPECT_TRUE(usage_chunk["choices"].empty());
  EXPECT_EQ(usage_chunk["usage"]["completion_tokens"], s.generator.script.size() + 1);
  EXPECT_EQ(usage_chunk["usage"]["prompt_tokens"], chat_prompt_tokens(s, "Hi"));
}

TEST(Server, StreamedTextEqualsTheNonStreamedText) {
  TestServer s;
  auto c = s.client();
  int status = 0;
  json plain = json::parse(post_json(c, "/v1/completions", {{"prompt", "x"}, {"max_tokens", 12}}, &status));
  std::string body = post_json(c, "/v1/completions", {{"prompt", "x"}, {"max_tokens", 12}, {"stream", true}}, &status);
  std::string text;
  for (auto& e : parse_sse(body)) {
    if (e.data == "[DONE]") continue;
    json chunk = json::parse(e.data);
    EXPECT_EQ(chunk["object"], "text_completion");
    text += chunk["choices"][0]["text"].get<std::string>();
  }
  EXPECT_EQ(text, plain["choices"][0]["text"]);
  EXPECT_EQ(text, s.generator.script.substr(0, 12));
}

TEST(Server, CompletionsAcceptTextAndTokenPromptsAndCountUsage) {
  TestServer s;
  auto c = s.client();
  int status = 0;
  json j = json::parse(post_json(c, "/v1/completions", {{"prompt", "abc"}, {"max_tokens", 5}}, &status));
  ASSERT_EQ(status, 200) << j.dump();
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["choices"][0]["text"], "Hello");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["prompt_tokens"], 3);
  EXPECT_EQ(j["usage"]["completion_tokens"], 5);
  j = json::parse(post_json(c, "/v1/completions", {{"prompt", {1, 2, 3, 4}}, {"max_tokens", 2}}, &status));
  ASSERT_EQ(status, 200) << j.dump();
  EXPECT_EQ(j["usage"]["prompt_tokens"], 4);
  EXPECT_EQ(s.generator.last().prompt, (std::vector<int32_t>{1, 2, 3, 4}));
  j = json::parse(post_json(c, "/v1/completions", {{"prompt", {"ab"}}, {"max_tokens", 2}, {"echo", true}}, &status));
  EXPECT_EQ(j["choices"][0]["text"], "abHe");
}

TEST(Server, StopStringCutsTextCancelsGenerationAndReportsIt) {
  TestServer s;
  auto c = s.client();
  int status = 0;
  json j = json::parse(post_json(c, "/v1/completions", {{"prompt", "x"}, {"max_tokens", 100}, {"stop", "world"}},
                                 &status));
  ASSERT_EQ(status, 200) << j.dump();
  EXPECT_EQ(j["choices"][0]["text"], "Hello ");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(j["choices"][0]["stop_reason"], "world");
  EXPECT_EQ(j["usage"]["completion_tokens"], 11);  // "Hello world" — the token completing the match counts
  EXPECT_EQ(s.generator.cancel_count(), 1u);
}

TEST(Server, StreamNeverShowsAPartialStopString) {
  TestServer s;
  s.generator.script = "one two three four";
  auto c = s.client();
  int status = 0;
  std::string body = post_json(
      c, "/v1/chat/completions", chat_body({{"stream", true}, {"stop", json::array({"thr", "zzz"})}}), &status);
  ASSERT_EQ(status, 200);
  std::string text;
  std::string finish;
  for (auto& e : parse_sse(body)) {
    if (e.data == "[DONE]") continue;
    json chunk = json::parse(e.data);
    auto content = chunk["choices"][0]["delta"].value("content", "");
    EXPECT_EQ(content.find('t', content.empty() ? 0 : content.size() - 1), std::string::npos)
        << "a chunk ends with a possible stop prefix: " << content;
    text += content;
    if (!chunk["choices"][0]["finish_reason"].is_null()) finish = chunk["choices"][0]["finish_reason"];
  }
  EXPECT_EQ(text, "one two ");
  EXPECT_EQ(finish, "stop");
}

TEST(Server, AnthropicMessagesAnswerWithAMessage) {
  TestServer s;
  auto c = s.client();
  int status = 0;
  json body{{"model", "test-model"},
            {"max_tokens", 100},
            {"system", "Be brief."},
            {"messages", {{{"role", "user"}, {"content", {{{"type", "text"}, {"text", "Hi"}}}}}}},
            {"stop_sequences", {"!"}}};
  json j = json::parse(post_json(c, "/v1/messages", body, &status));
  ASSERT_EQ(status, 200) << j.dump();
  EXPECT_EQ(j["type"], "message");
  EXPECT_EQ(j["role"], "assistant");
  EXPECT_EQ(j["content"][0]["type"], "text");
  EXPECT_EQ(j["content"][0]["text"], "Hello world");
  EXPECT_EQ(j["stop_reason"], "stop_sequence");
  EXPECT_EQ(j["stop_sequence"], "!");
  std::string prompt = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                       "<|im_start|>assistant\n";
  EXPECT_EQ(j["usage"]["input_tokens"], s.tokenizer().encode(prompt, false).size());
  EXPECT_EQ(j["usage"]["output_tokens"], 12);

  body.erase("stop_sequences");
  body["max_tokens"] = 4;
  j = json::parse(post_json(c, "/v1/messages", body, &status));
  EXPECT_EQ(j["stop_reason"], "max_tokens");
  body["max_tokens"] = 1000;
  j = json::parse(post_json(c, "/v1/messages", body, &status));
  EXPECT_EQ(j["stop_reason"], "end_turn");
  EXPECT_TRUE(j["stop_sequence"].is_null());
}

TEST(Server, AnthropicStreamSendsTheEventSequence) {
  TestServer s;
  auto c = s.client();
  int status = 0;
  json body{{"model", "test-model"}, {"max_tokens", 100}, {"stream", true},
            {"messages", {{{"role", "user"}, {"content", "Hi"}}}}};
  std::string out = post_json(c, "/v1/messages", body, &status);
  ASSERT_EQ(status, 200) << out;
  auto events = parse_sse(out);
  std::vector<std::string> names;
  std::string text;
  for (auto& e : events) {
    json d = json::parse(e.data);
    EXPECT_EQ(d["type"], e.event);
    if (names.empty() || names.back() != e.event) names.push_back(e.event);
    if (e.event == "content_block_delta") {
      EXPECT_EQ(d["delta"]["type"], "text_delta");
      text += d["delta"]["text"].get<std::string>();
    }
    if (e.event == "message_start") {
      EXPECT_EQ(d["message"]["usage"]["input_tokens"], chat_prompt_tokens(s, "Hi"));
    }
    if (e.event == "message_delta") {
      EXPECT_EQ(d["delta"]["stop_reason"], "end_turn");
      EXPECT_EQ(d["usage"]["output_tokens"], s.generator.script.size() + 1);
    }
  }
  EXPECT_EQ(names, (std::vector<std::string>{"message_start", "content_block_start", "ping", "content_block_delta",
                                             "content_block_stop", "message_delta", "message_stop"}));
  EXPECT_EQ(text, s.generator.script);
}

TEST(Server, LogprobsMapToTopLogprobs) {
  TestServer s;
  auto c = s.client();
  int status = 0;
  json j = json::parse(post_json(c, "/v1/chat/completions",
                                 chat_body({{"logprobs", true}, {"top_logprobs", 2}, {"max_tokens", 2}}), &status));
  ASSERT_EQ(status, 200) << j.dump();
  EXPECT_EQ(s.generator.last().top_logprobs, 2);
  const json& content = j["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 2u);
  EXPECT_EQ(content[0]["token"], "H");
  EXPECT_FLOAT_EQ(content[0]["logprob"].get<float>(), -0.5f);
  EXPECT_EQ(content[0]["top_logprobs"].size(), 2u);
  j = json::parse(post_json(c, "/v1/completions", {{"prompt", "x"}, {"logprobs", 1}, {"max_tokens", 2}}, &status));
  EXPECT_EQ(s.generator.last().top_logprobs, 1);
  EXPECT_EQ(j["choices"][0]["logprobs"]["tokens"], json({"H", "e"}));
}

TEST(Server, ErrorsHaveEachAPIsShapeStatusAndField) {
  TestServer s;
  auto c = s.client();
  int status = 0;
  auto res = c.Post("/v1/chat/completions", "{not json", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  expect_openai_error(res->body);
  res = c.Post("/v1/messages", "[1,", "application/json");
  EXPECT_EQ(res->status, 400);
  expect_anthropic_error(res->body, "invalid_request_error");

  expect_openai_error(post_json(c, "/v1/chat/completions", {{"model", "test-model"}}, &status), "messages");
  EXPECT_EQ(status, 400);
  expect_openai_error(post_json(c, "/v1/chat/completions", chat_body({{"temperature", "hot"}}), &status),
                      "temperature");
  EXPECT_EQ(status, 400);
  expect_openai_error(post_json(c, "/v1/chat/completions", chat_body({{"n", kMaxChoices + 1}}), &status), "n");
  EXPECT_EQ(status, 400);
  expect_openai_error(post_json(c, "/v1/completions", {{"prompt", "x"}, {"max_tokens", -1}}, &status), "max_tokens");
  EXPECT_EQ(status, 400);
  expect_openai_error(post_json(c, "/v1/chat/completions", chat_body({{"model", "gpt-9"}}), &status));
  EXPECT_EQ(status, 404);
  expect_anthropic_error(post_json(c, "/v1/messages", {{"messages", {{{"role", "user"}, {"content", "x"}}}}}, &status),
                         "invalid_request_error");
  EXPECT_EQ(status, 400);  // max_tokens is required by the Anthropic API
  expect_anthropic_error(
      post_json(c, "/v1/messages",
                {{"model", "nope"}, {"max_tokens", 5}, {"messages", {{{"role", "user"}, {"content", "x"}}}}}, &status),
      "not_found_error");
  EXPECT_EQ(status, 404);
  res = c.Get("/no/such/path");
  EXPECT_EQ(res->status, 404);
  expect_openai_error(res->body);
}

TEST(Server, MaxTokensIsCappedByTheContextAndAPromptTooLongIsRefusedWithTheNumbers) {
  TestServer s;
  s.generator.max_len = 64;
  s.generator.endless = true;
  auto c = s.client();
  int status = 0;
  // Agents send max_tokens far beyond a local model's context: it is a cap, and the context is the lower one.
  json j = json::parse(post_json(c, "/v1/completions", {{"prompt", "abcd"}, {"max_tokens", 100}}, &status));
  ASSERT_EQ(status, 200) << j.dump();
  EXPECT_EQ(s.generator.last().max_tokens, 60);
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["completion_tokens"], 60);
  j = json::parse(post_json(c, "/v1/messages", {{"max_tokens", 128000}, {"messages", {{{"role", "user"}, {"content", "x"}}}}},
                            &status));
  ASSERT_EQ(status, 200) << j.dump();
  EXPECT_EQ(j["stop_reason"], "max_tokens");
  EXPECT_EQ(j["usage"]["input_tokens"].get<int>() + j["usage"]["output_tokens"].get<int>(), 64);
  // A prompt that leaves no room is refused by the engine's admission check (engine::check_context), numbers and all.
  std::string body = post_json(c, "/v1/completions", {{"prompt", std::string(80, 'a')}, {"max_tokens", 10}}, &status);
  EXPECT_EQ(status, 400);
  j = json::parse(body);
  EXPECT_EQ(j["error"]["code"], "context_length_exceeded");
  EXPECT_EQ(j["error"]["message"],
            "This model's maximum context length is 64 tokens. However, you requested 81 tokens (80 in the prompt, "
            "1 for the completion). Please reduce the length of the prompt or max_tokens.");
  body = post_json(c, "/v1/messages",
                   {{"max_tokens", 100}, {"messages", {{{"role", "user"}, {"content", std::string(80, 'a')}}}}}, &status);
  EXPECT_EQ(status, 400);
  expect_anthropic_error(body, "invalid_request_error");
  // Without max_tokens a prompt that fills the context asks for one token, and is refused with its numbers.
  const json messages = {{{"role", "user"}, {"content", std::string(70, 'a')}}};
  body = post_json(c, "/v1/chat/completions", chat_body({{"messages", messages}}), &status);
  EXPECT_EQ(status, 400);
  const std::string message = json::parse(body)["error"]["message"];
  EXPECT_NE(message.find(" in the prompt, 1 for the completion)"), std::string::npos) << message;
}

TEST(Server, RequestsWithoutASeedGetDifferentSeeds) {
  TestServer s;
  auto c = s.client();
  int status = 0;
  post_json(c, "/v1/completions", {{"prompt", "abc"}, {"max_tokens", 2}, {"temperature", 1}, {"seed", 7}}, &status);
  ASSERT_EQ(status, 200);
  EXPECT_EQ(s.generator.last().sampling.seed, 7u);
  std::set<uint64_t> seeds;
  for (int i = 0; i < 3; i++) {
    post_json(c, "/v1/completions", {{"prompt", "abc"}, {"max_tokens", 2}, {"temperature", 1}}, &status);
    ASSERT_EQ(status, 200);
    seeds.insert(s.generator.last().sampling.seed);
  }
  EXPECT_EQ(seeds.size(), 3u);
}

TEST(Server, TokenizeAndDetokenizeRoundTrip) {
  TestServer s;
  auto c = s.client();
  int status = 0;
  json j = json::parse(post_json(c, "/tokenize", {{"prompt", "hé"}}, &status));
  ASSERT_EQ(status, 200) << j.dump();
  EXPECT_EQ(j["count"], 3);
  EXPECT_EQ(j["tokens"], json({104, 0xC3, 0xA9}));
  EXPECT_EQ(j["max_model_len"], 4096);
  j = json::parse(post_json(c, "/detokenize", {{"tokens", j["tokens"]}}, &status));
  EXPECT_EQ(j["prompt"], "hé");
  j = json::parse(post_json(c, "/tokenize", {{"messages", {{{"role", "user"}, {"content", "Hi"}}}}}, &status));
  EXPECT_EQ(j["count"], chat_prompt_tokens(s, "Hi"));
  expect_openai_error(post_json(c, "/detokenize", {{"tokens", {1, -5}}}, &status), "tokens[1]");
  EXPECT_EQ(status, 400);
}

TEST(Server, MetricsCountRequestsTokensAndLatencies) {
  TestServer s;
  auto c = s.client();
  int status = 0;
  post_json(c, "/v1/completions", {{"prompt", "abc"}, {"max_tokens", 5}}, &status);
  c.Get("/nope");
  auto res = c.Get("/metrics");
  ASSERT_TRUE(res);
  const std::string& m = res->body;
  EXPECT_NE(m.find("keel_http_requests_total{route=\"/v1/completions\",status=\"200\"} 1"), std::string::npos) << m;
  EXPECT_NE(m.find("keel_http_requests_total{route=\"other\",status=\"404\"} 1"), std::string::npos) << m;
  EXPECT_NE(m.find("keel_prompt_tokens_total 3"), std::string::npos) << m;
  EXPECT_NE(m.find("keel_generation_tokens_total 5"), std::string::npos) << m;
  EXPECT_NE(m.find("keel_time_to_first_token_seconds_count 1"), std::string::npos) << m;
  EXPECT_NE(m.find("keel_inter_token_latency_seconds_count 4"), std::string::npos) << m;
  EXPECT_NE(m.find("keel_kv_blocks_total 64"), std::string::npos) << m;
  EXPECT_NE(m.find("keel_device_allocations_after_warmup 0"), std::string::npos) << m;
  EXPECT_NE(m.find("keel_prefix_cache_hits_total{tier=\"device\"} 0"), std::string::npos) << m;
  EXPECT_NE(m.find("keel_prefix_cache_misses_total{tier=\"device\"} 0"), std::string::npos) << m;
  EXPECT_NE(m.find("keel_prefix_cache_blocks{tier=\"device\"} 0"), std::string::npos) << m;
}

}  // namespace
}  // namespace keel::server

namespace keel::server {
namespace {

// vLLM's cache_salt: a string on chat, completions and messages bodies that reaches the generator (which mixes it
// into the first block's key); anything but a string is a 400 naming the field.
TEST(Server, CacheSaltReachesTheGeneratorFromEveryRoute) {
  TestServer s;
  auto c = s.client();
  int status = 0;
  post_json(c, "/v1/chat/completions", chat_body({{"cache_salt", "tenant-a"}}), &status);
  ASSERT_EQ(status, 200);
  EXPECT_EQ(s.generator.last().cache_salt, "tenant-a");
  post_json(c, "/v1/completions", {{"prompt", "abc"}, {"max_tokens", 2}, {"cache_salt", "tenant-b"}}, &status);
  ASSERT_EQ(status, 200);
  EXPECT_EQ(s.generator.last().cache_salt, "tenant-b");
  json body{{"model", "test-model"},
            {"max_tokens", 2},
            {"cache_salt", "tenant-c"},
            {"messages", {{{"role", "user"}, {"content", "Hi"}}}}};
  post_json(c, "/v1/messages", body, &status);
  ASSERT_EQ(status, 200);
  EXPECT_EQ(s.generator.last().cache_salt, "tenant-c");
  post_json(c, "/v1/completions", {{"prompt", "abc"}, {"max_tokens", 2}}, &status);
  EXPECT_EQ(s.generator.last().cache_salt, "");
  const std::string err = post_json(c, "/v1/chat/completions", chat_body({{"cache_salt", 7}}), &status);
  EXPECT_EQ(status, 400);
  EXPECT_NE(err.find("cache_salt"), std::string::npos) << err;
}

}  // namespace
}  // namespace keel::server
