// The Jinja lexer, parser and interpreter: the input is a chat template, rendered (when it parses) as a
// server renders a model's template: a short conversation with a tool call, tools, and the usual kwargs.
#include "fuzz.h"
#include "tokenizer/chat_template.h"

using nlohmann::ordered_json;

namespace {

const ordered_json& messages() {
  static const ordered_json m = ordered_json::parse(R"([
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is 2+2? <|im_end|>"},
    {"role": "assistant", "content": "", "tool_calls": [
      {"type": "function", "function": {"name": "add", "arguments": {"a": 2, "b": 2}}}]},
    {"role": "tool", "content": "4"},
    {"role": "assistant", "content": "<think>\nadd\n</think>\n\n4"},
    {"role": "user", "content": [{"type": "text", "text": "Thanks"}]}])");
  return m;
}

const ordered_json& tools() {
  static const ordered_json t = ordered_json::parse(R"([{"type": "function", "function": {"name": "add",
    "description": "Adds", "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}}])");
  return t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::map<std::string, std::string> special = {{"bos_token", "<s>"}, {"eos_token", "</s>"}};
  keel::Result<keel::ChatTemplate> tmpl =
      keel::ChatTemplate::from_source(std::string(keel::fuzz::text(data, size)), special, "fuzz");
  if (!tmpl.ok()) return 0;
  const ordered_json kwargs = {{"enable_thinking", false}, {"date_string", "7 Dec 2026"}};
  (void)tmpl->render(messages(), tools(), /*add_generation_prompt=*/true, kwargs);
  (void)tmpl->render(ordered_json::array(), nullptr, /*add_generation_prompt=*/false);
  return 0;
}
