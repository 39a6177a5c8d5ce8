// Renders every conversation of tests/golden/templates/*.json (made by tests/golden/gen_templates.py with
// transformers' apply_chat_template) and compares byte for byte.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <string>

#include "env/env.h"
#include "tokenizer/chat_template.h"

namespace keel {
namespace {

using json = nlohmann::ordered_json;

json read_golden(const std::string& name) {
  auto text = env::Env::posix()->read_file(std::string(KEEL_SOURCE_DIR) + "/tests/golden/templates/" + name + ".json");
  EXPECT_TRUE(text.ok()) << text.status().message();
  return text.ok() ? json::parse(*text) : json();
}

void check_golden(const std::string& name) {
  json golden = read_golden(name);
  ASSERT_TRUE(golden.is_object());
  Result<ChatTemplate> ct = Status(Code::kInternal, "unset");
  const std::string source = golden["source"].get<std::string>();
  if (source.rfind("npm:", 0) == 0) {
    std::string dir = std::string(KEEL_SOURCE_DIR) + "/.npm-tokenizers/" + name + "/package/models";
    if (!env::Env::posix()->file_exists(dir + "/tokenizer_config.json")) {
      GTEST_SKIP() << dir << " is missing: run `make tokenizers`";
    }
    ct = ChatTemplate::load(dir);
  } else {
    std::map<std::string, std::string> special;
    for (const char* t : {"bos_token", "eos_token"}) {
      if (golden[t].is_string()) special[t] = golden[t].get<std::string>();
    }
    ct = ChatTemplate::from_source(golden["chat_template"].get<std::string>(), special, name + " (inline)");
  }
  ASSERT_TRUE(ct.ok()) << ct.status().message();
  int matched = 0;
  int total = 0;
  for (const auto& c : golden["cases"]) {
    ++total;
    SCOPED_TRACE(name + " / " + c["name"].get<std::string>());
    auto out = ct->render(c["messages"], c["tools"], c["add_generation_prompt"].get<bool>(), c["kwargs"]);
    if (c.contains("error")) {
      // "TemplateError: <message>" is raise_exception's text, which keel must pass on unchanged.
      std::string error = c["error"].get<std::string>();
      EXPECT_FALSE(out.ok()) << "expected an error like: " << error;
      bool ok = !out.ok();
      if (ok && error.rfind("TemplateError: ", 0) == 0) {
        std::string message = error.substr(std::string("TemplateError: ").size());
        EXPECT_NE(out.status().message().find(message), std::string::npos) << out.status().message();
        ok = out.status().message().find(message) != std::string::npos;
      }
      matched += ok;
      continue;
    }
    ASSERT_TRUE(out.ok()) << out.status().message();
    EXPECT_EQ(*out, c["expected"].get<std::string>());
    matched += *out == c["expected"].get<std::string>();
  }
  std::printf("[ golden   ] %s: %d/%d cases match transformers\n", name.c_str(), matched, total);
}

TEST(ChatTemplateGolden, Qwen3) { check_golden("qwen3"); }
TEST(ChatTemplateGolden, Llama3) { check_golden("llama3"); }
TEST(ChatTemplateGolden, Gemma3) { check_golden("gemma3"); }
TEST(ChatTemplateGolden, Llama31StyleWithToolsAndDate) { check_golden("llama31"); }
TEST(ChatTemplateGolden, MistralStyleWithTools) { check_golden("mistral"); }
TEST(ChatTemplateGolden, InterpreterFeatures) { check_golden("features"); }

}  // namespace
}  // namespace keel
