// Client-supplied messages through real chat templates: a chat (OpenAI) or messages (Anthropic) body, parsed as
// the server parses it, then rendered with the demo model's template and, when .npm-tokenizers holds it (make
// tokenizers), Qwen3's (tool calls, reasoning, kwargs). A render may fail with an error; it must not crash.
#include <vector>

#include "fuzz.h"
#include "server/request_fields.h"
#include "server/anthropic.h"
#include "server/openai.h"
#include "tokenizer/chat_template.h"

using namespace keel::server;

namespace {

const std::vector<keel::ChatTemplate>& templates() {
  static const std::vector<keel::ChatTemplate> all = [] {
    std::vector<keel::ChatTemplate> out;
    for (const char* dir : {"models/demo", ".npm-tokenizers/qwen3/package/models"}) {
      keel::Result<keel::ChatTemplate> t = keel::ChatTemplate::load(keel::fuzz::source_path(dir));
      if (t.ok()) out.push_back(std::move(*t));
    }
    KEEL_FUZZ_CHECK(!out.empty());
    return out;
  }();
  return all;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  templates();  // loads the files once, outside the per-input timeout
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  keel::Result<json> body = parse_request_body(keel::fuzz::text(data, size));
  if (!body.ok()) return 0;
  keel::Result<GenerationSpec> spec = parse_chat_request(*body);
  if (!spec.ok()) spec = parse_messages_request(*body);
  if (!spec.ok()) return 0;
  for (const keel::ChatTemplate& t : templates()) {
    (void)t.render(spec->messages, spec->tools, spec->add_generation_prompt, spec->template_kwargs);
  }
  return 0;
}
