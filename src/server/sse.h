// Server-sent events framing as the official clients parse it: OpenAI sends bare `data:` lines ending with
// `data: [DONE]`; Anthropic names every event (`event: message_start`).
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace keel::server {

// "data: {json}\n\n"
std::string sse_data(const nlohmann::ordered_json& payload);
// "event: NAME\ndata: {json}\n\n"
std::string sse_event(std::string_view name, const nlohmann::ordered_json& payload);
// "data: [DONE]\n\n"
std::string sse_done();

}  // namespace keel::server
