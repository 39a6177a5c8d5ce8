// The conversation as a chat template sees it. Clients send OpenAI chat messages (or Anthropic blocks, converted in
// anthropic_input.h); templates were written for what transformers hands them, and vLLM's chat path shows what
// that is for an agent's history:
//   - `content` is a string: null (an assistant turn that only calls tools) becomes "", text parts are joined;
//     templates that write `'\n' + message['content']` fail on null ("can only concatenate").
//   - `tool_calls[].function.arguments` is a mapping: OpenAI sends a JSON string; templates print it with
//     `| tojson` (Llama 3.1: a string would be quoted twice) or iterate it (Qwen3-Coder `arguments.items()`).
//   - `role: "tool"` messages keep `tool_call_id`; `reasoning_content` on assistant history reaches the template
//     (Qwen3 writes it back inside <think> for the turns after the last user query).
//   - `developer` is `system` (templates know no developer role).
// System messages after the conversation has started (Claude Code sends one every turn) render where they are
// when the template renders them there, else they are folded into a neighbouring message (render_chat).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "tokenizer/chat_template.h"

namespace keel::server {

using json = nlohmann::ordered_json;

// OpenAI chat `messages` → template messages, as above. Errors name the field (`messages[2].content[0].type: image
// parts are not supported ...`).
Result<json> template_messages_from_openai(const json& messages);

// Renders `messages` through `chat_template`. Inline system messages (a `system` message after the first non-system
// one) are rendered in place when the template accepts them and its output contains their text; otherwise (the
// template raises, as Gemma 3 and Mistral do, or drops them) the conversation is rendered again with them folded
// (fold_inline_system). A template error is returned as is.
Result<std::string> render_chat(const ChatTemplate& chat_template, const json& messages, const json& tools,
                                bool add_generation_prompt, const json& kwargs);

// The conversation with every system message but the first folded into a neighbour, so that it only ever changes
// the end of a growing conversation (a prefix cached from the previous turn stays valid):
//   - system messages leading the conversation are joined into one;
//   - one right after a user or tool message is appended to that message's content;
//   - one after an assistant message is prepended to the next message if that is a user message, else it becomes
//     a user message of its own there (or at the end).
// Texts are joined with a blank line.
json fold_inline_system(const json& messages);

}  // namespace keel::server
