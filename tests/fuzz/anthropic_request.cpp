// The Anthropic route's request parsing: a body → parse_messages_request; a rejection must turn into the error
// the route sends.
#include "fuzz.h"
#include "server/request_fields.h"
#include "server/anthropic.h"

using namespace keel::server;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  keel::Result<json> body = parse_request_body(keel::fuzz::text(data, size));
  if (!body.ok()) return 0;
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
