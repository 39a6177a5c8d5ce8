// Structured output with the real demo model through `keel serve`: response_format json_object / json_schema and
// forced tool calls give output valid against the schema, greedy and sampled, streamed and not, because the
// grammar (grammar/, xgrammar) masks every step; schemas keel cannot enforce are 400s naming the keyword; and
// logit_bias moves the demo model's choice end to end. Each check of validity is written out for its schema.
#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <regex>
#include <set>
#include <string>

#include "serve_process.h"

namespace {

using keel::test::ServeProcess;
using json = nlohmann::ordered_json;

// The demo model is ~1 ms a token on the CPU backend: one server for the file.
class StructuredOutput : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // ctest runs each case as its own process, two at a time: a log (where the port is read from) per process,
    // else a case can read a neighbour's port and talk to a server that is shutting down.
    serve_ = new ServeProcess({"--port", "0", "--backend", "cpu", "--max-num-seqs", "4"},
                              "/tmp/keel_structured_output." + std::to_string(getpid()) + ".log");
    port_ = serve_->wait_listening();
  }
  static void TearDownTestSuite() {
    EXPECT_EQ(serve_->terminate(), 0) << serve_->log_text();
    delete serve_;
  }
  void SetUp() override { ASSERT_GT(port_, 0) << serve_->log_text(); }

  static httplib::Result post(const std::string& path, const json& body) {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(120, 0);
    return c.Post(path, body.dump(), "application/json");
  }
  // A chat completion's choice (status 200 asserted).
  static json chat(json body) {
    body["messages"] = json::array({{{"role", "user"}, {"content", "Tell me about a person, as JSON."}}});
    auto res = post("/v1/chat/completions", body);
    EXPECT_TRUE(res);
    if (!res) return json();
    EXPECT_EQ(res->status, 200) << res->body;
    return json::parse(res->body)["choices"][0];
  }
  // The content of a streamed chat completion, and its finish reason.
  static std::pair<std::string, std::string> chat_streamed(json body) {
    body["messages"] = json::array({{{"role", "user"}, {"content", "Tell me about a person, as JSON."}}});
    body["stream"] = true;
    auto res = post("/v1/chat/completions", body);
    EXPECT_TRUE(res && res->status == 200);
    std::string content, finish;
    if (!res) return {content, finish};
    std::istringstream in(res->body);
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("data: {", 0) != 0) continue;
      const json chunk = json::parse(line.substr(6));
      const json& choice = chunk["choices"][0];
      if (choice["delta"].contains("content")) content += choice["delta"]["content"].get<std::string>();
      if (!choice["finish_reason"].is_null()) finish = choice["finish_reason"];
    }
    return {content, finish};
  }

  static ServeProcess* serve_;
  static int port_;
};
ServeProcess* StructuredOutput::serve_ = nullptr;
int StructuredOutput::port_ = 0;

size_t characters(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// Every part of it bounded, so that the tiny model must finish within max_tokens.
const json kPerson = json::parse(R"({
  "type": "object",
  "properties": {
    "name": {"type": "string", "minLength": 1, "maxLength": 20},
    "age": {"type": "integer", "minimum": 0, "maximum": 120},
    "mood": {"enum": ["happy", "sad", "calm"]},
    "pet": {"type": ["string", "null"], "maxLength": 8},
    "tags": {"type": "array", "items": {"type": "string", "maxLength": 10}, "minItems": 1, "maxItems": 3},
    "home": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 15},
                                              "since": {"type": "string", "format": "date"}},
             "required": ["city", "since"], "additionalProperties": false}
  },
  "required": ["name", "age", "mood", "pet", "tags", "home"],
  "additionalProperties": false
})");

// kPerson's rules, checked one by one on the parsed output.
void expect_person(const std::string& text) {
  json v;
  ASSERT_NO_THROW(v = json::parse(text)) << text;
  ASSERT_TRUE(v.is_object()) << text;
  std::vector<std::string> keys;
  for (auto& [k, _] : v.items()) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"name", "age", "mood", "pet", "tags", "home"})) << text;
  ASSERT_TRUE(v["name"].is_string()) << text;
  EXPECT_GE(characters(v["name"]), 1u);
  EXPECT_LE(characters(v["name"]), 20u) << text;
  ASSERT_TRUE(v["age"].is_number_integer()) << text;
  EXPECT_GE(v["age"].get<int64_t>(), 0);
  EXPECT_LE(v["age"].get<int64_t>(), 120);
  EXPECT_TRUE(v["mood"] == "happy" || v["mood"] == "sad" || v["mood"] == "calm") << text;
  EXPECT_TRUE(v["pet"].is_null() || (v["pet"].is_string() && characters(v["pet"]) <= 8)) << text;
  ASSERT_TRUE(v["tags"].is_array()) << text;
  EXPECT_GE(v["tags"].size(), 1u);
  EXPECT_LE(v["tags"].size(), 3u);
  for (const json& t : v["tags"]) EXPECT_TRUE(t.is_string() && characters(t) <= 10) << text;
  ASSERT_TRUE(v["home"].is_object()) << text;
  EXPECT_EQ(v["home"].size(), 2u) << text;
  EXPECT_TRUE(v["home"]["city"].is_string() && characters(v["home"]["city"]) <= 15) << text;
  ASSERT_TRUE(v["home"]["since"].is_string()) << text;
  EXPECT_TRUE(std::regex_match(v["home"]["since"].get<std::string>(),
                               std::regex(R"(\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01]))")))
      << text;
}

json schema_format(const json& schema) {
  return json{{"type", "json_schema"}, {"json_schema", {{"name", "person"}, {"strict", true}, {"schema", schema}}}};
}

TEST_F(StructuredOutput, AJsonSchemaIsFollowedGreedyAndSampledAndTheAnswerEndsWithIt) {
  // Without the grammar the demo model quotes fortunes: the schema is what makes this JSON.
  const json free = chat({{"max_tokens", 40}, {"temperature", 0}});
  EXPECT_ANY_THROW((void)json::parse(free["message"]["content"].get<std::string>())) << free;
  for (json sampling : {json{{"temperature", 0}}, json{{"temperature", 1.0}, {"seed", 1}},
                        json{{"temperature", 1.0}, {"seed", 2}}, json{{"temperature", 1.3}, {"seed", 3}}}) {
    sampling["max_tokens"] = 400;
    sampling["response_format"] = schema_format(kPerson);
    const json choice = chat(sampling);
    SCOPED_TRACE(sampling.dump());
    // Complete: the grammar allowed nothing but EOS after the closing brace.
    EXPECT_EQ(choice["finish_reason"], "stop") << choice;
    expect_person(choice["message"]["content"]);
  }
}

TEST_F(StructuredOutput, AStreamedAnswerFollowsTheSchemaToo) {
  auto [content, finish] = chat_streamed({{"max_tokens", 400}, {"temperature", 0.9}, {"seed", 11},
                                          {"response_format", schema_format(kPerson)}});
  EXPECT_EQ(finish, "stop");
  expect_person(content);
}

// n > 1: every sampled choice is schema-valid. Each has its own matcher (Server::new_mask); a shared one still
// gives valid output, as a matcher re-syncs to whichever history it is asked about, but replays a sibling's
// tokens at every step.
TEST_F(StructuredOutput, EveryOfNSampledChoicesFollowsTheSchema) {
  json body = {{"max_tokens", 400}, {"temperature", 1.0}, {"seed", 5}, {"n", 3},
               {"response_format", schema_format(kPerson)}};
  body["messages"] = json::array({{{"role", "user"}, {"content", "Tell me about a person, as JSON."}}});
  auto res = post("/v1/chat/completions", body);
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const json choices = json::parse(res->body)["choices"];
  ASSERT_EQ(choices.size(), 3u);
  std::set<std::string> distinct;
  for (const json& choice : choices) {
    SCOPED_TRACE(choice.dump());
    EXPECT_EQ(choice["finish_reason"], "stop");
    expect_person(choice["message"]["content"]);
    distinct.insert(choice["message"]["content"].get<std::string>());
  }
  EXPECT_GT(distinct.size(), 1u);  // sampled with seeds 5, 6, 7
}

TEST_F(StructuredOutput, JsonObjectGivesAnObject) {
  for (int seed : {1, 2, 3}) {
    const json choice = chat({{"max_tokens", 300}, {"temperature", 1.0}, {"seed", seed},
                              {"response_format", {{"type", "json_object"}}}});
    const std::string text = choice["message"]["content"];
    if (choice["finish_reason"] == "length") {
      // Free strings and keys are unbounded: the model may run out of tokens, never out of the grammar.
      EXPECT_EQ(text[0], '{') << text;
      continue;
    }
    json v;
    ASSERT_NO_THROW(v = json::parse(text)) << text;
    EXPECT_TRUE(v.is_object()) << text;
  }
}

TEST_F(StructuredOutput, CompletionsTakeAResponseFormatToo) {
  auto res = post("/v1/completions", {{"prompt", "A person:"}, {"max_tokens", 400}, {"temperature", 0},
                                      {"response_format", schema_format(kPerson)}});
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const json choice = json::parse(res->body)["choices"][0];
  EXPECT_EQ(choice["finish_reason"], "stop");
  expect_person(choice["text"]);
}

TEST_F(StructuredOutput, TheResponsesApiTakesTheSchemaAsTextFormat) {
  auto res = post("/v1/responses", {{"input", "Tell me about a person, as JSON."}, {"max_output_tokens", 400},
                                    {"temperature", 0.8}, {"seed", 4},
                                    {"text", {{"format", {{"type", "json_schema"}, {"name", "person"},
                                                          {"strict", true}, {"schema", kPerson}}}}}});
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const json answer = json::parse(res->body);
  EXPECT_EQ(answer["status"], "completed") << answer;
  std::string text;
  for (const json& item : answer["output"])
    if (item["type"] == "message") text += item["content"][0]["text"].get<std::string>();
  expect_person(text);
  json unique = kPerson;
  unique["properties"]["tags"]["uniqueItems"] = true;
  auto refused = post("/v1/responses", {{"input", "hi"},
                                        {"text", {{"format", {{"type", "json_schema"}, {"name", "p"},
                                                              {"schema", unique}}}}}});
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 400) << refused->body;
  EXPECT_EQ(json::parse(refused->body)["error"]["param"], "text.format.schema") << refused->body;
}

const json kTools = json::parse(R"([
  {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object",
    "properties": {"city": {"type": "string", "maxLength": 12}, "unit": {"enum": ["celsius", "fahrenheit"]}},
    "required": ["city", "unit"], "additionalProperties": false}}},
  {"type": "function", "function": {"name": "add", "parameters": {"type": "object",
    "properties": {"a": {"type": "integer", "minimum": -99, "maximum": 99},
                   "b": {"type": "integer", "minimum": -99, "maximum": 99}},
    "required": ["a", "b"], "additionalProperties": false}}}
])");

// The call as the model wrote it: from tool_calls when the server parsed it, else from the Hermes markup.
json the_call(const json& choice) {
  const json& message = choice["message"];
  if (message.contains("tool_calls") && message["tool_calls"].is_array() && !message["tool_calls"].empty()) {
    const json& fn = message["tool_calls"][0]["function"];
    return json{{"name", fn["name"]}, {"arguments", json::parse(fn["arguments"].get<std::string>())}};
  }
  const std::string text = message["content"].is_string() ? message["content"].get<std::string>() : "";
  std::smatch m;
  EXPECT_TRUE(std::regex_match(text, m, std::regex("<tool_call>\n([^]*)\n</tool_call>"))) << text;
  return m.size() > 1 ? json::parse(m[1].str()) : json();
}

void expect_valid_call(const json& call, const std::vector<std::string>& names) {
  ASSERT_TRUE(call.is_object()) << call;
  const std::string name = call["name"];
  EXPECT_NE(std::find(names.begin(), names.end(), name), names.end()) << call;
  const json& args = call["arguments"];
  ASSERT_TRUE(args.is_object()) << call;
  if (name == "get_weather") {
    EXPECT_EQ(args.size(), 2u) << call;
    EXPECT_TRUE(args["city"].is_string() && characters(args["city"]) <= 12) << call;
    EXPECT_TRUE(args["unit"] == "celsius" || args["unit"] == "fahrenheit") << call;
  } else {
    EXPECT_EQ(args.size(), 2u) << call;
    for (const char* k : {"a", "b"}) {
      ASSERT_TRUE(args[k].is_number_integer()) << call;
      EXPECT_LE(std::abs(args[k].get<int64_t>()), 99) << call;
    }
  }
}

TEST_F(StructuredOutput, ToolChoiceRequiredForcesACallOfOneOfTheToolsWithValidArguments) {
  for (json sampling : {json{{"temperature", 0}}, json{{"temperature", 1.0}, {"seed", 5}},
                        json{{"temperature", 1.0}, {"seed", 6}}}) {
    sampling["max_tokens"] = 200;
    sampling["tools"] = kTools;
    sampling["tool_choice"] = "required";
    const json choice = chat(sampling);
    SCOPED_TRACE(sampling.dump());
    EXPECT_NE(choice["finish_reason"], "length") << choice;
    expect_valid_call(the_call(choice), {"get_weather", "add"});
  }
}

TEST_F(StructuredOutput, ANamedToolIsTheOneCalledOnBothApis) {
  const json choice = chat({{"max_tokens", 200}, {"temperature", 1.0}, {"seed", 9}, {"tools", kTools},
                            {"tool_choice", {{"type", "function"}, {"function", {{"name", "add"}}}}}});
  expect_valid_call(the_call(choice), {"add"});

  json tools = json::array();
  for (const json& t : kTools)
    tools.push_back({{"name", t["function"]["name"]}, {"input_schema", t["function"]["parameters"]}});
  auto res = post("/v1/messages", {{"max_tokens", 200}, {"temperature", 0}, {"tools", tools},
                                   {"tool_choice", {{"type", "tool"}, {"name", "get_weather"}}},
                                   {"messages", {{{"role", "user"}, {"content", "Weather in Paris?"}}}}});
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const json answer = json::parse(res->body);
  json call;
  for (const json& block : answer["content"]) {
    if (block["type"] == "tool_use") call = json{{"name", block["name"]}, {"arguments", block["input"]}};
    if (block["type"] == "text") call = the_call(json{{"message", {{"content", block["text"]}}}});
  }
  expect_valid_call(call, {"get_weather"});
}

TEST_F(StructuredOutput, ASchemaKeelCannotEnforceIsA400NamingTheKeyword) {
  struct Case {
    json body;
    std::string param, says;
  };
  json unique = kPerson;
  unique["properties"]["tags"]["uniqueItems"] = true;
  const std::vector<Case> cases = {
      {{{"response_format", schema_format(unique)}}, "response_format.json_schema.schema",
       "keyword \"uniqueItems\" is not supported (at /properties/tags)"},
      {{{"response_format", schema_format(json{{"type", "string"}, {"format", "phone"}})}},
       "response_format.json_schema.schema", "format \"phone\" is not supported"},
      {{{"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "x"}}}}}},
       "response_format.json_schema.schema", "required"},
      {{{"response_format", {{"type", "yaml"}}}}, "response_format.type", "expected \"text\", \"json_object\""},
      {{{"tools", kTools}, {"tool_choice", {{"type", "function"}, {"function", {{"name", "nope"}}}}}},
       "tool_choice.function.name", "\"nope\" is not one of the request's tools"},
      {{{"tool_choice", "required"}}, "tool_choice", "needs tools"},
  };
  for (const Case& c : cases) {
    json body = c.body;
    body["messages"] = json::array({{{"role", "user"}, {"content", "hi"}}});
    auto res = post("/v1/chat/completions", body);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 400) << res->body;
    const json error = json::parse(res->body)["error"];
    EXPECT_EQ(error["param"], c.param) << res->body;
    EXPECT_NE(error["message"].get<std::string>().find(c.says), std::string::npos) << res->body;
  }
}

// logit_bias on the host path (engine/token_chooser.cpp), end to end: +100 forces a token the model would not
// choose, -100 takes away the token it would.
TEST_F(StructuredOutput, LogitBiasForcesAndBansTokensOfTheDemoModel) {
  auto completion = [](json extra) {
    json body{{"prompt", "Blessed are the"}, {"max_tokens", 4}, {"temperature", 0}, {"logprobs", 0}};
    body.update(extra);
    auto res = post("/v1/completions", body);
    EXPECT_TRUE(res && res->status == 200) << (res ? res->body : "");
    return res ? json::parse(res->body)["choices"][0] : json();
  };
  auto token_id = [](const std::string& text) {
    httplib::Client c("127.0.0.1", port_);
    auto res = c.Post("/tokenize", json{{"prompt", text}, {"add_special_tokens", false}}.dump(), "application/json");
    const json ids = json::parse(res->body)["tokens"];
    EXPECT_EQ(ids.size(), 1u) << text;
    return ids[0].get<int>();
  };
  const json plain = completion(json::object());
  const std::string first = plain["logprobs"]["tokens"][0];
  ASSERT_FALSE(first.empty());
  // -100 on the greedy first token: another token comes first.
  const json banned = completion({{"logit_bias", {{std::to_string(token_id(first)), -100}}}});
  EXPECT_NE(banned["logprobs"]["tokens"][0], first) << banned;
  // +100 on a token the model does not pick: it is every token.
  const int forced = token_id(" Amen");
  ASSERT_NE(plain["logprobs"]["tokens"][0], " Amen");
  const json biased = completion({{"logit_bias", {{std::to_string(forced), 100}}}});
  EXPECT_EQ(biased["text"], " Amen Amen Amen Amen") << biased;
}

}  // namespace
