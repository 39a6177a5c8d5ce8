// keel template: renders a model's chat template for a conversation, exactly as transformers'
// apply_chat_template(..., tokenize=False) does, and writes the prompt to stdout with nothing added.
#include <cstdio>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "base/json_parse.h"
#include "cli/commands.h"
#include "env/env.h"
#include "tokenizer/chat_template.h"

namespace keel::cli {
namespace {

using json = nlohmann::ordered_json;

struct TemplateArgs {
  std::string dir, messages_file, tools_file, kwargs;
  bool add_generation_prompt = false;
};

Result<json> read_json_file(const std::string& flag, const std::string& path) {
  auto text = env::Env::posix()->read_file(path);
  if (!text.ok()) return Status(text.status().code(), flag + ": " + text.status().message());
  Result<json> j = parse_json_bounded<json>(*text, kRequestJsonDepth, flag + " " + path);
  if (!j.ok()) return j.status();
  return j;
}

Status run_template(const TemplateArgs& a) {
  KEEL_ASSIGN_OR_RETURN(ChatTemplate ct, ChatTemplate::load(a.dir));
  KEEL_ASSIGN_OR_RETURN(json messages, read_json_file("--messages", a.messages_file));
  json tools = nullptr;
  // Also accepted: an OpenAI-style request body {"messages": [...], "tools": [...]}.
  if (messages.is_object() && messages.contains("messages")) {
    if (messages.contains("tools")) tools = messages["tools"];
    messages = json(messages["messages"]);
  }
  if (!messages.is_array()) {
    return invalid_argument("--messages: expected a JSON array of messages ({})", a.messages_file);
  }
  if (!a.tools_file.empty()) {
    KEEL_ASSIGN_OR_RETURN(tools, read_json_file("--tools", a.tools_file));
    if (!tools.is_array() && !tools.is_null()) {
      return invalid_argument("--tools: expected a JSON array of tools ({})", a.tools_file);
    }
  }
  json kwargs = nullptr;
  if (!a.kwargs.empty()) {
    Result<json> parsed = parse_json_bounded<json>(a.kwargs, kRequestJsonDepth, "--kwargs");
    if (!parsed.ok()) return parsed.status();
    kwargs = std::move(parsed).value();
    if (!kwargs.is_object()) {
      return invalid_argument("--kwargs: expected a JSON object such as '{{\"enable_thinking\": false}}' (got {})",
                              a.kwargs);
    }
  }
  KEEL_ASSIGN_OR_RETURN(std::string prompt, ct.render(messages, tools, a.add_generation_prompt, kwargs));
  std::fwrite(prompt.data(), 1, prompt.size(), stdout);
  return Status();
}

}  // namespace

void add_template(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<TemplateArgs>();
  CLI::App* t = app.add_subcommand("template", "Render the chat template for a conversation (byte-exact, to stdout)");
  t->add_option("DIR", args->dir, "Model or tokenizer directory (chat_template.jinja or tokenizer_config.json)")
      ->required();
  t->add_option("--messages", args->messages_file, "JSON file: an array of {role, content, ...} messages")
      ->required();
  t->add_option("--tools", args->tools_file, "JSON file: an array of tool definitions");
  t->add_flag("--add-generation-prompt", args->add_generation_prompt, "End with the assistant turn's opening");
  t->add_option("--kwargs", args->kwargs, "JSON object of extra template variables, e.g. '{\"enable_thinking\": false}'");
  t->callback([args, &ctx] {
    Status s = run_template(*args);
    ctx.exit_code = s.ok() ? 0 : report(s);
  });
}

}  // namespace keel::cli
