// The OpenAI routes: /v1/chat/completions and /v1/completions request parsing, and their response and
// stream chunk shapes (chat.completion, chat.completion.chunk, text_completion).
#pragma once

#include <memory>

#include "server/api.h"

namespace keel::server {

Result<GenerationSpec> parse_chat_request(const json& body);
// `vocab`: token-id prompts are checked against it.
Result<GenerationSpec> parse_completion_request(const json& body, int32_t vocab);

std::unique_ptr<ResponseWriter> make_chat_writer(ResponseContext ctx);
std::unique_ptr<ResponseWriter> make_completion_writer(ResponseContext ctx);

// "stop" / "length" (a cancelled or failed request has no OpenAI finish reason; writers report an error).
const char* openai_finish_reason(engine::FinishReason finish);

}  // namespace keel::server
