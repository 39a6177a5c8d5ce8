// ModelConfig from a GGUF file's metadata (llama, qwen2, qwen3, qwen3moe, gemma3 architectures).
#pragma once

#include "format/gguf.h"
#include "model/config.h"

namespace keel::model {

Result<ModelConfig> config_from_gguf(const format::GgufFile& file);

}  // namespace keel::model
