#include "grammar/grammar.h"

#include <chrono>
#include <cstdio>

#include <sys/resource.h>

#include <gtest/gtest.h>

#include "grammar/compiled.h"
#include "grammar/grammar_test_util.h"

namespace keel::grammar {
namespace {

bool allowed(const std::vector<uint32_t>& bits, int32_t id) { return (bits[id / 32] >> (id % 32)) & 1u; }

std::shared_ptr<const Compiled> compile_schema(GrammarCompiler& c, const json& schema) {
  auto g = c.json_schema(schema, "schema");
  EXPECT_TRUE(g.ok()) << g.status().message();
  return g.ok() ? *g : nullptr;
}

class DemoGrammar : public ::testing::Test {
 protected:
  void SetUp() override {
    tok_ = real_tokenizer("demo");
    ASSERT_NE(tok_, nullptr);
    compiler_ = std::make_unique<GrammarCompiler>(*tok_, tok_->eos_ids());
  }
  const tokenizer::Tokenizer* tok_ = nullptr;
  std::unique_ptr<GrammarCompiler> compiler_;
};

TEST_F(DemoGrammar, ADocumentValidAgainstTheSchemaIsAcceptedByteByByteAndEveryBreakOfItIsNot) {
  auto g = compile_schema(*compiler_, nested_20_field_schema());
  ASSERT_NE(g, nullptr);
  const std::string doc = nested_20_field_document();
  EXPECT_TRUE(accepts(g, doc));
  EXPECT_FALSE(accepts(g, doc.substr(0, doc.size() - 1)));  // a prefix, not complete
  EXPECT_TRUE(accepts_prefix(g, doc.substr(0, doc.size() - 1)));
  auto replaced = [&](const std::string& from, const std::string& to) {
    std::string d = doc;
    const size_t at = d.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return d.replace(at, from.size(), to);
  };
  for (const std::string& bad : {
           replaced(R"("id": 4711)", R"("id": 0)"),                          // below minimum
           replaced(R"("id": 4711)", R"("id": 47.5)"),                       // not an integer
           replaced(R"("name": "Ada Lovelace")", R"("name": "")"),           // minLength 1
           replaced(R"("Ada Lovelace")", "\"Ada\tLovelace\""),              // a raw tab in a bounded string
           replaced(R"("first programmer")", "\"first\x01programmer\""),    // a raw control character
           replaced(R"("Ada Lovelace")", R"("Ada Lovelace, Countess of Lovelace")"),  // maxLength 32
           replaced(R"("ada@example.org")", R"("ada.example.org")"),         // format email
           replaced(R"("age": 36)", R"("age": 151)"),                        // maximum
           replaced(R"("active": true)", R"("active": "yes")"),              // type boolean
           replaced(R"("role": "admin")", R"("role": "root")"),              // enum
           replaced(R"("2024-03-01T12:30:00Z")", R"("2024-13-01T12:30:00Z")"),  // format date-time
           replaced(R"(["math", "engines"])", R"([])"),                      // minItems
           replaced(R"(["math", "engines"])", R"(["a", "b", "c", "d", "e"])"),  // maxItems
           replaced(R"("zip": "12345")", R"("zip": "1234")"),                // pattern
           replaced(R"("country": "FR")", R"("country": "UK")"),             // enum in a $ref
           replaced(R"("version": 2)", R"("version": 3)"),                   // const
           replaced(R"("ratio": 0.25)", R"("ratio": 1.5)"),                  // number maximum
           replaced(R"("event": "login"})", R"("event": "login", "x": 1})"),  // additionalProperties false
           replaced(R"("daily": 10, )", ""),                                 // required
           replaced(R"("locale": "en-GB")", R"("locale": "en_GB")"),         // pattern
           replaced(R"("work": null)", R"("work": 5)"),                      // anyOf
           replaced(R"("nickname": null)", R"("nickname": 1)"),              // type union
           replaced(R"("id": 4711, "name")", R"("name")"),                   // order / required
           doc + " ",                                                        // nothing after the value
       }) {
    EXPECT_FALSE(accepts(g, bad)) << bad;
  }
}

TEST_F(DemoGrammar, JsonObjectIsAnyObjectAndNothingElse) {
  auto g = compiler_->json_object();
  ASSERT_TRUE(g.ok());
  for (const char* ok : {R"({})", R"({"a": 1})", R"({"a": [1, 2.5, {"b": null}], "c": "d\"e"})"})
    EXPECT_TRUE(accepts(*g, ok)) << ok;
  for (const char* bad : {R"([1])", R"("x")", R"(1)", R"({"a" 1})", R"({"a": })", R"({a: 1})"})
    EXPECT_FALSE(accepts(*g, bad)) << bad;
}

TEST_F(DemoGrammar, AToolCallNamesOneOfTheToolsWithArgumentsValidAgainstItsSchema) {
  std::vector<ToolSchema> tools = {
      {"get_weather",
       json::parse(R"({"type": "object", "properties": {"city": {"type": "string", "maxLength": 20},
                       "unit": {"enum": ["c", "f"]}}, "required": ["city", "unit"]})"),
       "tools[0].function.parameters"},
      {"now", nullptr, "tools[1].function.parameters"}};
  auto g = compiler_->tool_call(tools, ToolCallForm{});
  ASSERT_TRUE(g.ok()) << g.status().message();
  EXPECT_TRUE(accepts(*g, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": "
                          "\"c\"}}\n</tool_call>"));
  EXPECT_TRUE(accepts(*g, "<tool_call>\n{\"name\": \"now\", \"arguments\": {}}\n</tool_call>"));
  for (const char* bad : {
           "{\"name\": \"now\", \"arguments\": {}}",                                       // no markers
           "<tool_call>\n{\"name\": \"later\", \"arguments\": {}}\n</tool_call>",          // not a tool
           "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
           "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"k\"}}\n</tool_call>",
           "<tool_call>\n{\"arguments\": {}, \"name\": \"now\"}\n</tool_call>"}) {
    EXPECT_FALSE(accepts(*g, bad)) << bad;
  }
  tools[0].parameters = json::parse(R"({"type": "object", "properties": {"a": {"not": {}}}})");
  auto refused = compiler_->tool_call(tools, ToolCallForm{});
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("tools[0].function.parameters: keyword \"not\""), std::string::npos)
      << refused.status().message();
}

TEST_F(DemoGrammar, ACallInMistralsFormIsTheNameThenArgsThenTheArguments) {
  const std::vector<ToolSchema> tools = {
      {"add", json::parse(R"({"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]})"), "t0"},
      {"now", nullptr, "t1"}};
  ToolCallForm mistral{ToolCallForm::Body::kNameThenJson, "[TOOL_CALLS]", "", ""};
  auto g = compiler_->tool_call(tools, mistral);
  ASSERT_TRUE(g.ok()) << g.status().message();
  EXPECT_TRUE(accepts(*g, R"([TOOL_CALLS]add[ARGS]{"a": 3})"));
  EXPECT_TRUE(accepts(*g, R"([TOOL_CALLS]now[ARGS]{})"));
  EXPECT_FALSE(accepts(*g, R"([TOOL_CALLS]add[ARGS]{"a": "3"})"));
  EXPECT_FALSE(accepts(*g, R"([TOOL_CALLS]sub[ARGS]{"a": 3})"));
  EXPECT_FALSE(accepts(*g, R"(add[ARGS]{"a": 3})"));
  // Llama 3: the bare object, "parameters" for the arguments.
  auto llama = compiler_->tool_call(tools, ToolCallForm{ToolCallForm::Body::kJsonObject, "", "", "parameters"});
  ASSERT_TRUE(llama.ok()) << llama.status().message();
  EXPECT_TRUE(accepts(*llama, R"({"name": "add", "parameters": {"a": 1}})"));
  EXPECT_FALSE(accepts(*llama, R"({"name": "add", "arguments": {"a": 1}})"));
}

TEST_F(DemoGrammar, ASchemaXgrammarCannotConvertIsAnErrorNamingTheField) {
  auto g = compiler_->json_schema(json::parse(R"({"type": "string", "pattern": "(?<=a)b"})"), "text.format.schema");
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), Code::kInvalidArgument);
  EXPECT_NE(g.status().message().find("text.format.schema: the schema cannot be enforced"), std::string::npos)
      << g.status().message();
}

TEST_F(DemoGrammar, CompiledGrammarsAreCachedBySchemaText) {
  const json a = json::parse(R"({"type": "object", "properties": {"x": {"type": "integer"}}})");
  auto first = compiler_->json_schema(a, "s");
  auto again = compiler_->json_schema(json::parse(R"({"type":"object","properties":{"x":{"type":"integer"}}})"), "s");
  ASSERT_TRUE(first.ok() && again.ok());
  EXPECT_EQ(first->get(), again->get());
  EXPECT_EQ(compiler_->stats().hits, 1u);
  EXPECT_EQ(compiler_->stats().misses, 1u);
  // Bounded: with room for 2, a third schema pushes out the least recently used.
  GrammarCompiler small(*tok_, tok_->eos_ids(), {}, 2);
  for (int i = 0; i < 3; i++)
    ASSERT_TRUE(small.json_schema(json{{"const", i}}, "s").ok());
  ASSERT_TRUE(small.json_schema(json{{"const", 2}}, "s").ok());  // kept
  ASSERT_TRUE(small.json_schema(json{{"const", 0}}, "s").ok());  // gone: compiled again
  EXPECT_EQ(small.stats().hits, 1u);
  EXPECT_EQ(small.stats().misses, 4u);
}

// The mask against xgrammar's byte matcher, token by token along a real tokenization of a valid document: a
// token is allowed exactly when its bytes extend the output validly; special tokens never are; the stop ids only
// once the document is complete. `stride` > 1 checks every stride-th id (Qwen3's 151k).
void check_masks_along_document(const tokenizer::Tokenizer& tok, int stride) {
  GrammarCompiler compiler(tok, tok.eos_ids());
  auto g = compile_schema(compiler, nested_20_field_schema());
  ASSERT_NE(g, nullptr);
  const std::string doc = nested_20_field_document();
  const std::vector<int32_t> tokens = tok.encode(doc, false);
  ASSERT_EQ(tok.decode(tokens, false), doc);
  std::vector<std::string> bytes(tok.vocab_size());
  for (int32_t id = 0; id < tok.vocab_size(); id++) bytes[id] = tok.token_bytes(id);

  auto mask = make_mask(g);
  xgrammar::GrammarMatcher oracle(g->grammar, g->stop_ids);
  std::vector<uint32_t> bits(engine::mask_words(tok.vocab_size()));
  size_t checked = 0;
  for (size_t step = 0; step <= tokens.size(); step++) {
    mask->fill(std::span(tokens.data(), step), bits);
    const bool complete = step == tokens.size();
    for (int32_t id = 0; id < tok.vocab_size(); id += stride) {
      const bool stop = std::find(g->stop_ids.begin(), g->stop_ids.end(), id) != g->stop_ids.end();
      bool expect;
      if (stop) {
        expect = complete;
      } else if (tok.is_special(id) || bytes[id].empty()) {
        expect = false;
      } else {
        expect = oracle.AcceptString(bytes[id]);
        if (expect) oracle.Rollback(1);
      }
      ASSERT_EQ(allowed(bits, id), expect) << "step " << step << " token " << id << " " << json(bytes[id]).dump()
                                           << " after " << json(tok.decode(std::span(tokens.data(), step), false)).dump();
      checked++;
    }
    if (!complete) {
      ASSERT_TRUE(allowed(bits, tokens[step])) << "the document's own token " << tokens[step] << " at step " << step;
      ASSERT_TRUE(oracle.AcceptToken(tokens[step]));
    }
  }
  std::printf("[ masks ] %zu (token, step) pairs checked over %zu steps, vocab %d\n", checked, tokens.size() + 1,
              tok.vocab_size());
}

TEST(GrammarMask, AllowsExactlyTheTokensThatExtendTheOutputDemoVocabulary) {
  const tokenizer::Tokenizer* tok = real_tokenizer("demo");
  ASSERT_NE(tok, nullptr);
  check_masks_along_document(*tok, 1);
}

TEST(GrammarMask, AllowsExactlyTheTokensThatExtendTheOutputQwen3Vocabulary) {
  const tokenizer::Tokenizer* tok = real_tokenizer("qwen3");
  ASSERT_NE(tok, nullptr);
  check_masks_along_document(*tok, 13);
}

TEST_F(DemoGrammar, AMaskFollowsARequestThatGoesBack) {
  auto g = compile_schema(*compiler_, nested_20_field_schema());
  ASSERT_NE(g, nullptr);
  const std::vector<int32_t> tokens = tok_->encode(nested_20_field_document(), false);
  ASSERT_GT(tokens.size(), 20u);
  const size_t words = engine::mask_words(tok_->vocab_size());
  std::vector<uint32_t> walked(words), fresh(words);
  auto mask = make_mask(g);
  mask->fill(std::span(tokens.data(), 20), walked);
  // Back to 7 tokens (preempted and recomputed, or a rejected speculation), as a fresh request there.
  mask->fill(std::span(tokens.data(), 7), walked);
  make_mask(g)->fill(std::span(tokens.data(), 7), fresh);
  EXPECT_EQ(walked, fresh);
  // A different 8th token than before (the first key's value differs).
  std::vector<int32_t> other(tokens.begin(), tokens.begin() + 7);
  int32_t digit = *tok_->token_to_id("9");
  ASSERT_TRUE(allowed(walked, digit)) << tok_->decode(other, false);
  other.push_back(digit);
  mask->fill(other, walked);
  make_mask(g)->fill(other, fresh);
  EXPECT_EQ(walked, fresh);
}

TEST_F(DemoGrammar, OnlyTheStopIdsFollowACompleteOutputAndSpecialTokensNeverAppear) {
  auto g = compiler_->json_object();
  ASSERT_TRUE(g.ok());
  const std::vector<int32_t> tokens = tok_->encode(R"({"a": 1})", false);
  std::vector<uint32_t> bits(engine::mask_words(tok_->vocab_size()));
  auto mask = make_mask(*g);
  mask->fill(std::span(tokens.data(), tokens.size() - 1), bits);
  for (int32_t id = 0; id < tok_->vocab_size(); id++) {
    if (tok_->is_special(id)) EXPECT_FALSE(allowed(bits, id)) << "special token " << id << " mid-object";
  }
  mask->fill(tokens, bits);
  std::vector<int32_t> allowed_ids;
  for (int32_t id = 0; id < tok_->vocab_size(); id++)
    if (allowed(bits, id)) allowed_ids.push_back(id);
  std::vector<int32_t> eos = tok_->eos_ids();
  std::sort(eos.begin(), eos.end());
  EXPECT_EQ(allowed_ids, eos);
}

// Not a timed assertion: the numbers docs/DECISIONS.md reports, printed in the test log. Compile time is the
// process's CPU time too (xgrammar compiles on up to 8 threads; this machine is shared).
double cpu_seconds() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec + u.ru_stime.tv_usec / 1e6;
}

void bench(const char* name, const char* label, const json& schema) {
  const tokenizer::Tokenizer* tok = real_tokenizer(name);
  ASSERT_NE(tok, nullptr);
  using clock = std::chrono::steady_clock;
  auto t0 = clock::now();
  GrammarCompiler compiler(*tok, tok->eos_ids());
  const double setup_ms = std::chrono::duration<double, std::milli>(clock::now() - t0).count();
  const double cpu0 = cpu_seconds();
  auto g = compile_schema(compiler, schema);
  ASSERT_NE(g, nullptr);
  const double compile_cpu_ms = (cpu_seconds() - cpu0) * 1e3;
  const double compile_ms = compiler.stats().last_compile_ms;
  t0 = clock::now();
  ASSERT_TRUE(compiler.json_schema(schema, "s").ok());
  const double cached_ms = std::chrono::duration<double, std::milli>(clock::now() - t0).count();
  const std::vector<int32_t> tokens = tok->encode(nested_20_field_document(), false);
  std::vector<uint32_t> bits(engine::mask_words(tok->vocab_size()));
  std::vector<double> us;
  const double mask_cpu0 = cpu_seconds();
  for (int rep = 0; rep < 3; rep++) {
    auto mask = make_mask(g);
    for (size_t step = 0; step <= tokens.size(); step++) {
      auto s = clock::now();
      mask->fill(std::span(tokens.data(), step), bits);
      us.push_back(std::chrono::duration<double, std::micro>(clock::now() - s).count());
    }
  }
  const double mask_cpu_us = (cpu_seconds() - mask_cpu0) * 1e6 / us.size();
  std::sort(us.begin(), us.end());
  double sum = 0;
  for (double u : us) sum += u;
  std::printf("[ bench ] %s vocab %d, %s: tokenizer setup %.1f ms; compile %.1f ms wall, %.1f ms CPU (cached %.3f ms); "
              "mask per token (%zu tokens x3): mean %.1f us wall, %.1f us CPU, p50 %.1f us, p99 %.1f us, max %.1f us\n",
              name, tok->vocab_size(), label, setup_ms, compile_ms, compile_cpu_ms, cached_ms, tokens.size() + 1,
              sum / us.size(), mask_cpu_us, us[us.size() / 2], us[us.size() * 99 / 100], us.back());
}

TEST(GrammarBench, Nested20FieldSchemaDemoVocabulary) {
  bench("demo", "nested 20-field schema", nested_20_field_schema());
  bench("demo", "the same without minLength/maxLength", without_length_bounds(nested_20_field_schema()));
}
TEST(GrammarBench, Nested20FieldSchemaQwen3Vocabulary) {
  bench("qwen3", "nested 20-field schema", nested_20_field_schema());
  bench("qwen3", "the same without minLength/maxLength", without_length_bounds(nested_20_field_schema()));
}

}  // namespace
}  // namespace keel::grammar
