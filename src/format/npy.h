// NumPy .npy files (format 1.0) of float32, C order: written by `keel logits`, read by golden tests.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "env/env.h"

namespace keel::format {

struct NpyArray {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

std::string encode_npy(const float* data, const std::vector<int64_t>& shape);
Status write_npy(env::Env* env, const std::string& path, const float* data, const std::vector<int64_t>& shape);
Result<NpyArray> read_npy(env::Env* env, const std::string& path);

}  // namespace keel::format
