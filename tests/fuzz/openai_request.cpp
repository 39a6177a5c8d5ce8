// The OpenAI routes' request parsing: a body → parse_chat_request and parse_completion_request (the demo
// model's vocabulary for token-id prompts); a rejection must turn into the error the route sends.
#include "fuzz.h"
#include "server/request_fields.h"
#include "server/openai.h"

using namespace keel::server;

namespace {

void check(const keel::Result<GenerationSpec>& spec) {
  if (spec.ok()) {
    KEEL_FUZZ_CHECK(!spec->max_tokens || *spec->max_tokens >= 1);
    return;
  }
  ApiError error = ApiError::from_status(spec.status());
  KEEL_FUZZ_CHECK(error.status >= 400 && error.status < 600);
  (void)error.to_json(ApiFlavor::kOpenAI).dump();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  keel::Result<json> body = parse_request_body(keel::fuzz::text(data, size));
  if (!body.ok()) return 0;
  check(parse_chat_request(*body));
  check(parse_completion_request(*body, /*vocab=*/4096));
  return 0;
}
