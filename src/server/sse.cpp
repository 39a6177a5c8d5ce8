#include "server/sse.h"

namespace keel::server {

namespace {

// JSON with invalid UTF-8 replaced rather than throwing: model text is decoded with U+FFFD already, but a
// request's stop string or echo may carry anything.
std::string dump(const nlohmann::ordered_json& payload) {
  return payload.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace

std::string sse_data(const nlohmann::ordered_json& payload) { return "data: " + dump(payload) + "\n\n"; }

std::string sse_event(std::string_view name, const nlohmann::ordered_json& payload) {
  std::string out = "event: ";
  out += name;
  out += "\ndata: ";
  out += dump(payload);
  out += "\n\n";
  return out;
}

std::string sse_done() { return "data: [DONE]\n\n"; }

}  // namespace keel::server
