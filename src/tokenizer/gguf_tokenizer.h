// A GGUF file's tokenizer (tokenizer.ggml.*) and chat template (tokenizer.chat_template) as the Hugging Face
// files they were converted from: tokenizer.json, tokenizer_config.json, so Tokenizer::from_json and
// ChatTemplate read them like any model directory. Byte-level BPE ("gpt2") with llama.cpp's pre-tokenizer names
// (llama-bpe, llama3, qwen2, default/gpt2) is supported; SentencePiece ("llama") vocabularies are refused.
#pragma once

#include <string>

#include "base/status.h"
#include "format/gguf.h"

namespace keel::tokenizer {

struct GgufTokenizerFiles {
  std::string tokenizer_json;
  std::string config_json;     // bos_token, eos_token
  std::string chat_template;   // "" when the file has none
  std::string bos_token, eos_token;
};

Result<GgufTokenizerFiles> tokenizer_files_from_gguf(const format::GgufFile& file);

}  // namespace keel::tokenizer
