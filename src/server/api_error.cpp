#include "server/api_error.h"

#include <cctype>

namespace keel::server {

using json = nlohmann::ordered_json;

ApiError ApiError::bad_request(std::string message, std::string param) {
  return ApiError{400, std::move(message), std::move(param), "", 0};
}

ApiError ApiError::not_found(std::string message, std::string code) {
  return ApiError{404, std::move(message), "", std::move(code), 0};
}

ApiError ApiError::unauthorized() {
  return ApiError{401, "invalid or missing API key (send 'Authorization: Bearer KEY' or 'x-api-key: KEY')", "",
                  "invalid_api_key", 0};
}

ApiError ApiError::context_length(std::string message) {
  return ApiError{400, std::move(message), "messages", "context_length_exceeded", 0};
}

ApiError ApiError::overloaded(int status, std::string message) {
  return ApiError{status, std::move(message), "", "", 1};
}

ApiError ApiError::internal(std::string message) { return ApiError{500, std::move(message), "", "", 0}; }

namespace {

// "temperature: must be ..." → "temperature"; "messages[0].content: ..." → "messages[0].content".
std::string leading_field(const std::string& message) {
  size_t colon = message.find(": ");
  if (colon == std::string::npos || colon == 0) return "";
  for (size_t i = 0; i < colon; ++i) {
    char c = message[i];
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '[' || c == ']')) return "";
  }
  return message.substr(0, colon);
}

}  // namespace

ApiError ApiError::from_status(const Status& status) {
  switch (status.code()) {
    case Code::kInvalidArgument:
      return bad_request(status.message(), leading_field(status.message()));
    case Code::kNotFound:
      return not_found(status.message());
    case Code::kResourceExhausted:
      return overloaded(503, status.message());
    default:
      return internal(status.message());
  }
}

const char* openai_error_type(int status) {
  switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 429: return "rate_limit_error";
    case 503: return "service_unavailable_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

const char* anthropic_error_type(int status) {
  switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 429: return "rate_limit_error";
    case 503: return "overloaded_error";
    default: return status >= 500 ? "api_error" : "invalid_request_error";
  }
}

json ApiError::to_json(ApiFlavor flavor) const {
  if (flavor == ApiFlavor::kAnthropic) {
    return json{{"type", "error"}, {"error", {{"type", anthropic_error_type(status)}, {"message", message}}}};
  }
  json error{{"message", message},
             {"type", openai_error_type(status)},
             {"param", param.empty() ? json(nullptr) : json(param)},
             {"code", code.empty() ? json(nullptr) : json(code)}};
  return json{{"error", std::move(error)}};
}

}  // namespace keel::server
