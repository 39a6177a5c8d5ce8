// The Anthropic route: /v1/messages request parsing, the Message response, and its named SSE events
// (message_start, content_block_start, ping, content_block_delta, content_block_stop, message_delta,
// message_stop; error when generation fails mid-stream).
#pragma once

#include <memory>

#include "server/api.h"

namespace keel::server {

Result<GenerationSpec> parse_messages_request(const json& body);
// /v1/messages/count_tokens: the prompt fields of a messages request (max_tokens and sampling are not needed).
Result<GenerationSpec> parse_count_tokens_request(const json& body);
std::unique_ptr<ResponseWriter> make_messages_writer(ResponseContext ctx);

// "end_turn", "max_tokens" or "stop_sequence".
const char* anthropic_stop_reason(const Piece& last);

}  // namespace keel::server
