// safetensors: an 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}},
// then the raw tensor bytes. Files are memory-mapped; tensors are views into the mapping.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "env/env.h"
#include "base/dtype.h"
#include "format/quant.h"

namespace keel::format {

struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;
  std::string file;  // which file it came from, for error messages
  // GGUF block-quantized: `shape` is the logical one (rows of cols values, the last dimension innermost) and
  // `data` holds the blocks of each row back to back; dtype is then U8.
  QuantKind quant = QuantKind::kNone;

  int64_t numel() const;
  size_t nbytes() const;
  std::string shape_str() const;  // "[256, 64]"
};

// One .safetensors file, mapped for the lifetime of this object.
class SafetensorsFile {
 public:
  static Result<std::unique_ptr<SafetensorsFile>> open(env::Env* env, const std::string& path);
  // The same from bytes already mapped (or held in memory); tensors are views into `mapping`.
  static Result<std::unique_ptr<SafetensorsFile>> parse(std::unique_ptr<env::MappedFile> mapping);
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }

 private:
  std::unique_ptr<env::MappedFile> mapping_;
  std::map<std::string, TensorView> tensors_;
};

class GgufWeights;

// All tensors of a model directory: model.safetensors, or the shards named by
// model.safetensors.index.json; or of one .gguf file (format/gguf.h), under their Hugging Face names.
class WeightFiles {
 public:
  static Result<WeightFiles> open(env::Env* env, const std::string& model_dir);

  const TensorView* find(const std::string& name) const;
  const std::map<std::string, const TensorView*>& all() const { return index_; }
  uint64_t total_bytes() const;
  // The dtype holding the most bytes: what a backend computes in. Packed quantized tensors count as the dtype
  // they dequantize to (their scales' dtype for MLX, F16 for GGUF blocks).
  DType dominant_dtype() const;
  // Whether any tensor is packed (MLX U32 words or GGUF blocks).
  bool quantized() const;

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::shared_ptr<GgufWeights> gguf_;
  std::map<std::string, const TensorView*> index_;
};

}  // namespace keel::format
