// Where ChatTemplate finds its template and special tokens, as transformers 5 does.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <string>

#include "env/env.h"
#include "tokenizer/chat_template.h"

namespace keel {
namespace {

using json = nlohmann::ordered_json;

class ChatTemplateLoad : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/keel_chat_template_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void write(const std::string& name, const std::string& text) {
    ASSERT_TRUE(env::Env::posix()->write_file_atomic(env::join_path(dir_, name), text).ok());
  }
  std::string render(const ChatTemplate& ct, const json& tools = nullptr) {
    auto out = ct.render(json::parse(R"([{"role": "user", "content": "hi"}])"), tools, true);
    return out.ok() ? *out : "ERROR: " + out.status().message();
  }
  std::string dir_;
};

TEST_F(ChatTemplateLoad, StringTemplateAndAddedTokenObjects) {
  write("tokenizer_config.json", R"({"chat_template": "{{ bos_token }}{{ messages[0].content }}{{ eos_token }}",
    "bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>"})");
  auto ct = ChatTemplate::load(dir_);
  ASSERT_TRUE(ct.ok()) << ct.status().message();
  EXPECT_EQ(render(*ct), "<s>hi</s>");
}

TEST_F(ChatTemplateLoad, ChatTemplateJinjaFileWins) {
  write("tokenizer_config.json", R"({"chat_template": "from config", "bos_token": "<s>"})");
  write("chat_template.jinja", "{{ bos_token }}from file\n");
  auto ct = ChatTemplate::load(dir_);
  ASSERT_TRUE(ct.ok()) << ct.status().message();
  EXPECT_EQ(render(*ct), "<s>from file");
}

TEST_F(ChatTemplateLoad, NamedTemplatesPickDefaultOrToolUse) {
  write("tokenizer_config.json", R"({"chat_template": [{"name": "default", "template": "plain"},
    {"name": "tool_use", "template": "tools={{ tools | length }}"}]})");
  auto ct = ChatTemplate::load(dir_);
  ASSERT_TRUE(ct.ok()) << ct.status().message();
  EXPECT_EQ(render(*ct), "plain");
  EXPECT_EQ(render(*ct, json::parse(R"([{"type": "function"}])")), "tools=1");
}

TEST_F(ChatTemplateLoad, KwargsAndGenerationPromptAreVariables) {
  write("chat_template.jinja",
        "{{ add_generation_prompt }} {{ enable_thinking is defined }} {{ tools }} {{ bos_token is defined }}");
  auto ct = ChatTemplate::load(dir_);
  ASSERT_TRUE(ct.ok()) << ct.status().message();
  EXPECT_EQ(render(*ct), "True False None False");
  auto out = ct->render(json::array(), nullptr, false, json::parse(R"({"enable_thinking": false})"));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, "False True None False");
}

TEST_F(ChatTemplateLoad, MissingTemplateIsNotFound) {
  write("tokenizer_config.json", R"({"bos_token": "<s>"})");
  auto ct = ChatTemplate::load(dir_);
  ASSERT_FALSE(ct.ok());
  EXPECT_EQ(ct.status().code(), Code::kNotFound);
}

TEST_F(ChatTemplateLoad, SyntaxErrorNamesTheFile) {
  write("chat_template.jinja", "{% if %}");
  auto ct = ChatTemplate::load(dir_);
  ASSERT_FALSE(ct.ok());
  EXPECT_EQ(ct.status().message(), "chat template line 1, column 7: unexpected '%}' (" + dir_ + "/chat_template.jinja)");
}

TEST_F(ChatTemplateLoad, StrftimeNowFormatsTheCurrentDate) {
  write("chat_template.jinja", "{{ strftime_now('%Y') }}");
  auto ct = ChatTemplate::load(dir_);
  ASSERT_TRUE(ct.ok());
  EXPECT_GE(std::stoi(render(*ct)), 2025);  // the calendar year (a monotonic clock printed 1970)
}

}  // namespace
}  // namespace keel
