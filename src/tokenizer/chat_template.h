// A model's chat template, loaded as transformers loads it and rendered as apply_chat_template renders it.
//
// Where the template comes from (transformers 5 order): `chat_template.jinja` in the directory wins; else
// `chat_template` in tokenizer_config.json, either a string or a list of {name, template} (then "tool_use"
// when tools are given and it exists, else "default"). Special tokens (bos_token, eos_token, unk_token,
// pad_token) come from tokenizer_config.json, as strings or {"content": ...} objects.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <memory>
#include <string>

#include "base/status.h"
#include "env/env.h"
#include "tokenizer/jinja/template.h"

namespace keel {

class ChatTemplate {
 public:
  static Result<ChatTemplate> load(const std::string& dir, env::Env* env = env::Env::posix());

  // A template from text; `special_tokens` maps bos_token/eos_token/... to their strings. `origin` names
  // where the text came from in error messages.
  static Result<ChatTemplate> from_source(const std::string& source,
                                          std::map<std::string, std::string> special_tokens,
                                          const std::string& origin, env::Env* env = env::Env::posix());

  // messages: array of {role, content, ...}; tools: array or null; extra_kwargs: object of further template
  // variables (enable_thinking, date_string, ...) or null.
  Result<std::string> render(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools,
                             bool add_generation_prompt,
                             const nlohmann::ordered_json& extra_kwargs = nullptr) const;

  const std::map<std::string, std::string>& special_tokens() const { return special_tokens_; }
  // The template's text ("tool_use" when the model has one, else "default"): what the output parsers' formats
  // are detected from.
  std::string source() const;

 private:
  struct Named {
    std::string source;
    jinja::Template compiled;
  };
  std::map<std::string, std::shared_ptr<Named>> templates_;  // "default", "tool_use", ...
  std::map<std::string, std::string> special_tokens_;
  std::string origin_;
  env::Env* env_ = nullptr;
};

}  // namespace keel
