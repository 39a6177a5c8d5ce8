// An HTTP error as each API family renders it: OpenAI {"error":{"message","type","param","code"}}, Anthropic
// {"type":"error","error":{"type","message"}}. Handlers build one ApiError; the route decides the shape.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace keel::server {

enum class ApiFlavor { kOpenAI, kAnthropic };

struct ApiError {
  int status = 400;
  std::string message;
  std::string param;  // the offending field ("" when none)
  std::string code;   // OpenAI's machine-readable code ("" when none)
  int retry_after_s = 0;  // > 0: send Retry-After

  static ApiError bad_request(std::string message, std::string param = "");
  static ApiError not_found(std::string message, std::string code = "");
  static ApiError unauthorized();
  static ApiError context_length(std::string message);
  static ApiError overloaded(int status, std::string message);
  static ApiError internal(std::string message);
  // kInvalidArgument → 400 (param: the field name the message starts with), kNotFound → 404,
  // kResourceExhausted → 503, else 500.
  static ApiError from_status(const Status& status);

  nlohmann::ordered_json to_json(ApiFlavor flavor) const;
};

// The error "type" each family uses for a status.
const char* openai_error_type(int status);
const char* anthropic_error_type(int status);

}  // namespace keel::server
