// The prompt half of an Anthropic Messages request — what /v1/messages and /v1/messages/count_tokens share — turned
// into the conversation a chat template renders (chat_messages.h):
//   - `system`: a string or text blocks (`cache_control` ignored; Claude Code's `x-anthropic-billing-header` block
//     dropped: it carries a per-request hash, and at the head of the prompt it would keep any prefix from being
//     cached); `system`-role entries inside `messages` stay where they are (render_chat places them).
//   - user blocks: `text` (blocks of one message joined by a blank line), `tool_result` → a `tool` message
//     (`tool_call_id`, text content; `is_error` prefixes "Error: "), in block order.
//   - assistant blocks: `text` → content, `tool_use` → `tool_calls` (arguments: the input object), `thinking` →
//     `reasoning_content`, `redacted_thinking` dropped (opaque); `context_management`'s clear_thinking_20251015
//     drops reasoning_content from all but the last `keep` assistant turns.
//   - `image` and `document` blocks (also inside tool results): 400 naming vision/documents as unsupported.
//   - `tools` → OpenAI's function shape; server tools (a `type` other than "custom", no input_schema) are left out:
//     a local model cannot run them.
//   - `thinking` {type: enabled|adaptive|disabled} → the template's enable_thinking; `output_config.effort` → the
//     template's reasoning_effort (and "low" turns adaptive or unspecified thinking off); `chat_template_kwargs`
//     (an extension, as on the OpenAI route) are added last and win.
#pragma once

#include "server/api.h"

namespace keel::server {

// Fills spec->messages, spec->tools and spec->template_kwargs from `body`.
Status read_anthropic_prompt(const json& body, GenerationSpec* spec);

}  // namespace keel::server
