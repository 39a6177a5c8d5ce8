// The Anthropic route's request parsing: a body → parse_messages_request; a rejection must turn into the error
// the route sends.
#include "fuzz.h"
#include "server/anthropic.h"

using namespace keel::server;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::optional<json> body = keel::fuzz::json_body(data, size);
  if (!body) return 0;
  keel::Result<GenerationSpec> spec = parse_messages_request(*body);
  if (spec.ok()) {
    KEEL_FUZZ_CHECK(spec->is_chat && spec->messages.is_array());
    return 0;
  }
  ApiError error = ApiError::from_status(spec.status());
  KEEL_FUZZ_CHECK(error.status >= 400 && error.status < 600);
  (void)error.to_json(ApiFlavor::kAnthropic).dump();
  return 0;
}
