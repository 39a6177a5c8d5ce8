// `keel serve` on the demo model: prompt logprobs (echo) against transformers' own logits (models/demo/golden.json,
// written by the reference script), and n > 1 choices that compute the prompt once.
#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <set>
#include <sstream>

#include "serve_process.h"

namespace {

using keel::test::ServeProcess;
using nlohmann::json;

json post(int port, const std::string& path, const json& body) {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(120, 0);
  auto res = c.Post(path.c_str(), body.dump(), "application/json");
  if (!res) return json();
  EXPECT_EQ(res->status, 200) << res->body;
  return json::parse(res->body, nullptr, false);
}

double metric(int port, const std::string& name) {
  httplib::Client c("127.0.0.1", port);
  auto res = c.Get("/metrics");
  if (!res) return -1;
  std::istringstream in(res->body);
  double total = 0;
  for (std::string line; std::getline(in, line);)
    if (line.rfind(name + " ", 0) == 0 || line.rfind(name + "{", 0) == 0) total += std::stod(line.substr(line.rfind(' ') + 1));
  return total;
}

std::string text_of(int port, int32_t id) {
  json r = post(port, "/detokenize", {{"tokens", {id}}});
  return r.is_object() ? r["prompt"].get<std::string>() : "";
}

// The golden prompt followed by transformers' greedy continuation, echoed with logprobs: at the positions of the
// continuation, the model's distribution is what transformers recorded (steps[i]: the top 5 ids and logits).
// Logprobs differ from logits by the log-sum-exp only, so the gaps between the top entries must match.
TEST(ServeChoices, EchoedPromptLogprobsMatchTransformersLogits) {
  std::ifstream f(std::string(KEEL_SOURCE_DIR) + "/models/demo/golden.json");
  const json golden = json::parse(f);
  std::vector<int32_t> ids = golden["prompt_ids"];
  const size_t prompt_len = ids.size();
  const size_t checked = golden["steps"].size() - 1;
  for (size_t i = 0; i < checked; i++) ids.push_back(golden["greedy_ids"][i]);

  ServeProcess serve({"--port", "0", "--backend", "cpu", "--max-num-seqs", "4"}, "/tmp/keel_serve_choices_echo." + std::to_string(getpid()) + ".log");
  const int port = serve.wait_listening();
  ASSERT_GT(port, 0) << serve.log_text();
  json r = post(port, "/v1/completions",
                {{"prompt", ids}, {"echo", true}, {"logprobs", 5}, {"max_tokens", 1}, {"temperature", 0}});
  ASSERT_TRUE(r.is_object());
  const json& lp = r["choices"][0]["logprobs"];
  ASSERT_EQ(lp["tokens"].size(), ids.size() + 1);
  EXPECT_TRUE(lp["token_logprobs"][0].is_null());
  EXPECT_TRUE(lp["top_logprobs"][0].is_null());
  for (size_t i = 0; i < checked; i++) {
    // Position prompt_len - 1 + i predicts greedy_ids[i]: entry prompt_len + i of the echoed tokens.
    const size_t at = prompt_len + i;
    const json& step = golden["steps"][i];
    const json& top = lp["top_logprobs"][at];
    ASSERT_EQ(top.size(), 5u) << at;
    const double chosen = lp["token_logprobs"][at];
    const std::string best = text_of(port, step["top_ids"][0]);
    ASSERT_TRUE(top.contains(best)) << "step " << i << ": " << top.dump();
    EXPECT_NEAR(chosen, top[best].get<double>(), 1e-4) << "greedy: the token is the most likely";
    for (int k = 1; k < 5; k++) {
      const std::string text = text_of(port, step["top_ids"][k]);
      if (!top.contains(text)) continue;  // a near tie with the sixth (gaps of 0.002 exist)
      const double want = step["top_logits"][k].get<double>() - step["top_logits"][0].get<double>();
      EXPECT_NEAR(top[text].get<double>() - chosen, want, 0.05) << "step " << i << " rank " << k;
    }
  }
  EXPECT_EQ(serve.terminate(), 0) << serve.log_text();
}

TEST(ServeChoices, NChoicesShareThePromptsBlocksAndAgreeAtTemperatureZero) {
  ServeProcess serve({"--port", "0", "--backend", "cpu", "--max-num-seqs", "8"}, "/tmp/keel_serve_choices_n." + std::to_string(getpid()) + ".log");
  const int port = serve.wait_listening();
  ASSERT_GT(port, 0) << serve.log_text();
  // 60 words: well over a few 16-token blocks.
  std::string prompt;
  for (int i = 0; i < 60; i++) prompt += "word" + std::to_string(i) + " ";
  const double hits_before = metric(port, "keel_prefix_cache_hits_total");
  json greedy = post(port, "/v1/completions",
                     {{"prompt", prompt}, {"n", 4}, {"max_tokens", 8}, {"temperature", 0}, {"ignore_eos", true}});
  ASSERT_TRUE(greedy.is_object());
  ASSERT_EQ(greedy["choices"].size(), 4u);
  for (int i = 0; i < 4; i++) {
    EXPECT_EQ(greedy["choices"][i]["index"], i);
    EXPECT_EQ(greedy["choices"][i]["text"], greedy["choices"][0]["text"]);
  }
  const int prompt_tokens = greedy["usage"]["prompt_tokens"];
  EXPECT_EQ(greedy["usage"]["completion_tokens"], 4 * 8);
  // Choices 1..3 take every full block before the prompt's last token from choice 0's prefill.
  const int shared_blocks = (prompt_tokens - 1) / 16;
  EXPECT_GE(shared_blocks, 2);
  EXPECT_EQ(metric(port, "keel_prefix_cache_hits_total") - hits_before, 3 * shared_blocks);

  json sampled = post(port, "/v1/completions", {{"prompt", prompt}, {"n", 4}, {"max_tokens", 12}, {"temperature", 1.5},
                                                {"seed", 7}, {"ignore_eos", true}});
  ASSERT_TRUE(sampled.is_object());
  std::set<std::string> texts;
  for (const json& c : sampled["choices"]) texts.insert(c["text"].get<std::string>());
  EXPECT_GE(texts.size(), 3u) << sampled.dump();
  // Choice 2 is seed 9 drawn alone.
  json alone = post(port, "/v1/completions", {{"prompt", prompt}, {"max_tokens", 12}, {"temperature", 1.5},
                                              {"seed", 9}, {"ignore_eos", true}});
  EXPECT_EQ(alone["choices"][0]["text"], sampled["choices"][2]["text"]);
  EXPECT_EQ(serve.terminate(), 0) << serve.log_text();
}

}  // namespace
