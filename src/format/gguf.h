// GGUF (docs/gguf.md of ggml): "GGUF", version 2 or 3, tensor and metadata counts, metadata key/values, tensor
// infos (name, dims innermost first, ggml type, offset), then the data section at general.alignment (32).
// The file is memory-mapped; tensors are views into the mapping. Metadata is kept as JSON values (arrays of
// strings stay arrays), which is what the config and tokenizer readers consume.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "env/env.h"
#include "format/safetensors.h"

namespace keel::format {

bool is_gguf_path(const std::string& path);  // a file name ending in ".gguf"

struct GgufTensor {
  std::string name;          // GGUF's own ("blk.0.attn_q.weight")
  uint32_t type = 0;         // ggml type id
  std::vector<int64_t> dims;  // innermost first, as GGUF stores them
  const uint8_t* data = nullptr;
};

class GgufFile {
 public:
  static Result<std::unique_ptr<GgufFile>> open(env::Env* env, const std::string& path);
  static Result<std::unique_ptr<GgufFile>> parse(std::unique_ptr<env::MappedFile> mapping);

  const std::string& path() const { return path_; }
  const nlohmann::json& metadata() const { return metadata_; }
  // metadata[key] or nullptr.
  const nlohmann::json* get(const std::string& key) const;
  const std::string& architecture() const { return architecture_; }
  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const GgufTensor* find(const std::string& gguf_name) const;

 private:
  std::unique_ptr<env::MappedFile> mapping_;
  std::string path_;
  nlohmann::json metadata_ = nlohmann::json::object();
  std::string architecture_;
  std::vector<GgufTensor> tensors_;
};

// GGUF's tensors as the Hugging Face names keel binds ("blk.0.attn_q.weight" -> "model.layers.0.self_attn.
// q_proj.weight", stacked experts -> "mlp.switch_mlp.*"), with shapes outermost first and llama.cpp's
// rotary permutation of llama q/k rows undone (into memory this object owns).
class GgufWeights {
 public:
  static Result<std::unique_ptr<GgufWeights>> open(env::Env* env, const std::string& path);
  const GgufFile& file() const { return *file_; }
  const std::map<std::string, TensorView>& tensors() const { return views_; }

 private:
  std::unique_ptr<GgufFile> file_;
  std::map<std::string, TensorView> views_;
  std::vector<std::unique_ptr<uint8_t[]>> owned_;
};

// The HF name of a GGUF tensor name for `arch` ("" when keel has no use for it, e.g. rope_freqs).
std::string hf_tensor_name(const std::string& gguf_name, const std::string& arch);

}  // namespace keel::format
