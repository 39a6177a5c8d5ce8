// keel generate and keel serve drive one engine (engine::Engine: one admission check, one step, one token
// chooser): for a prompt and its sampling parameters they give the same tokens, greedy and seeded, and they refuse
// a request that cannot fit with the same numbers.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "keel_cli.h"
#include "keel_serve.h"

namespace {

using keel::test::body_of;
using keel::test::CliRun;
using keel::test::http;
using keel::test::run_keel;
using keel::test::Server;
using json = nlohmann::json;

const std::string kDemo = std::string(KEEL_SOURCE_DIR) + "/models/demo";

json complete(const Server& server, json fields) {
  json body = {{"model", "demo"}, {"prompt", "Once upon a time"}, {"max_tokens", 16}, {"ignore_eos", true}};
  for (auto& [k, v] : fields.items()) body[k] = v;
  return json::parse(body_of(http(server.port, "POST", "/v1/completions", body.dump())), nullptr, false);
}

TEST(OneEnginePath, GenerateAndServeGiveTheSameGreedyAndSeededTokens) {
  Server server("");
  ASSERT_TRUE(server.ready()) << server.stderr_text();
  struct Case {
    std::string flags;
    json fields;
  };
  for (const Case& c : {Case{"--temperature 0", {{"temperature", 0}}},
                        Case{"--temperature 0.9 --top-p 0.95 --top-k 40 --seed 7",
                             {{"temperature", 0.9}, {"top_p", 0.95}, {"top_k", 40}, {"seed", 7}}}}) {
    CliRun generated =
        run_keel("generate " + kDemo + " --prompt \"Once upon a time\" --max-tokens 16 --ignore-eos " + c.flags);
    ASSERT_EQ(generated.exit_code, 0) << generated.err;
    const json served = complete(server, c.fields);
    ASSERT_TRUE(served.contains("choices")) << served.dump();
    EXPECT_EQ(generated.out, served["choices"][0]["text"].get<std::string>() + "\n") << c.flags;
    EXPECT_EQ(served["usage"]["completion_tokens"], 16);
  }
}

TEST(OneEnginePath, TheContextCheckAtAdmissionGivesTheNumbersToCliAndHttp) {
  // keel generate: the model's context (2048), the prompt's 3 tokens and --max-tokens.
  CliRun r = run_keel("generate " + kDemo + " --tokens \"1 2 3\" --max-tokens 4000 --ids");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("error: This model's maximum context length is 2048 tokens. However, you requested 4003 tokens "
                       "(3 in the prompt, 4000 for the completion). Please reduce the length of the prompt or "
                       "max_tokens.\n"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(r.out, "");

  // keel serve: --max-model-len 512 (the test server's), the same check and the same words. HTTP caps max_tokens
  // at what the context leaves (agents send 32,000 whatever the model), so it is a prompt alone too long there.
  Server server("");
  ASSERT_TRUE(server.ready()) << server.stderr_text();
  const json refused = complete(server, {{"prompt", std::vector<int>(600, 3)}, {"max_tokens", 1000}});
  ASSERT_TRUE(refused.contains("error")) << refused.dump();
  EXPECT_EQ(refused["error"]["code"], "context_length_exceeded");
  EXPECT_EQ(refused["error"]["message"],
            "This model's maximum context length is 512 tokens. However, you requested 601 tokens (600 in the prompt, "
            "1 for the completion). Please reduce the length of the prompt or max_tokens.");
}

}  // namespace
