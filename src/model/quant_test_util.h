// Test-side writers of quantized checkpoints: a safetensors writer and MLX's affine quantizer, written from
// mlx's definition (backend/cpu/quantized.cpp quantize) independently of keel's dequantizer, so a round trip
// through keel checks keel's reading of the packing, not its agreement with itself.
#pragma once

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include "base/dtype.h"

namespace keel::model::testing {

struct RawTensor {
  std::string dtype;  // "F32", "BF16", "U32"
  std::vector<int64_t> shape;
  std::string bytes;
};

inline RawTensor f32_tensor(const std::vector<float>& v, std::vector<int64_t> shape) {
  return RawTensor{"F32", std::move(shape), std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4)};
}

inline void write_safetensors(const std::string& path, const std::map<std::string, RawTensor>& tensors) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  uint64_t offset = 0;
  for (auto& [name, t] : tensors) {
    header[name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  for (int i = 0; i < 8; i++) out.put(static_cast<char>((h.size() >> (8 * i)) & 0xff));
  out << h;
  for (auto& [name, t] : tensors) out << t.bytes;
}

// One [rows, cols] matrix quantized the way mlx.core.quantize does it: per group, the scale spans min..max over
// 2^bits - 1 steps with the edge of larger magnitude exactly representable; codes packed LSB-first into a byte
// stream (uint32 words for 2/4/8 bits, 3/5-byte packs for 3/5/6 bits: the same bits). `dequantized` receives
// bf16(scale) * q + bf16(bias), what a reader must reconstruct.
struct MlxQuantized {
  RawTensor weight, scales, biases;
  std::vector<float> dequantized;
};

inline MlxQuantized mlx_quantize(const std::vector<float>& w, std::vector<int64_t> shape, int bits, int group) {
  const int64_t cols = shape.back();
  const int64_t rows = static_cast<int64_t>(w.size()) / cols;
  const float n_bins = static_cast<float>((1 << bits) - 1);
  MlxQuantized q;
  std::vector<uint8_t> packed(static_cast<size_t>(rows * cols * bits / 8), 0);
  std::vector<uint16_t> scales, biases;
  q.dequantized.resize(w.size());
  for (int64_t r = 0; r < rows; r++) {
    uint8_t* row = packed.data() + r * cols * bits / 8;
    for (int64_t g = 0; g < cols / group; g++) {
      const float* x = w.data() + r * cols + g * group;
      float lo = INFINITY, hi = -INFINITY;
      for (int i = 0; i < group; i++) lo = std::min(lo, x[i]), hi = std::max(hi, x[i]);
      const bool mask = std::abs(lo) > std::abs(hi);
      float scale = std::max((hi - lo) / n_bins, 1e-7f);
      scale = mask ? scale : -scale;
      const float edge = mask ? lo : hi;
      const float q0 = std::rint(edge / scale);
      float bias = 0;
      if (q0 != 0) scale = edge / q0, bias = edge;
      const uint16_t s16 = float_to_bf16(scale), b16 = float_to_bf16(bias);
      scales.push_back(s16);
      biases.push_back(b16);
      for (int i = 0; i < group; i++) {
        const float c = std::min(std::max(std::rint((x[i] - bias) / scale), 0.0f), n_bins);
        const uint32_t code = static_cast<uint32_t>(c);
        const int64_t bit = (g * group + i) * bits;
        for (int k = 0; k < bits; k++)
          if (code >> k & 1) row[(bit + k) / 8] |= static_cast<uint8_t>(1u << ((bit + k) % 8));
        q.dequantized[r * cols + g * group + i] = bf16_to_float(s16) * c + bf16_to_float(b16);
      }
    }
  }
  std::vector<int64_t> packed_shape = shape, group_shape = shape;
  packed_shape.back() = cols * bits / 32;
  group_shape.back() = cols / group;
  q.weight = RawTensor{"U32", packed_shape, std::string(packed.begin(), packed.end())};
  q.scales = RawTensor{"BF16", group_shape, std::string(reinterpret_cast<const char*>(scales.data()), scales.size() * 2)};
  q.biases = RawTensor{"BF16", group_shape, std::string(reinterpret_cast<const char*>(biases.data()), biases.size() * 2)};
  return q;
}

// mlx-lm's (and GGUF's) stacked experts: mlp.switch_mlp.P.weight [E, rows, cols] from
// mlp.experts.{e}.P.weight, in place.
inline void stack_experts(std::map<std::string, std::vector<float>>& f32,
                          std::map<std::string, std::vector<int64_t>>& shapes) {
  const std::regex expert(R"((model\.layers\.\d+\.mlp\.)experts\.(\d+)\.(\w+_proj)\.weight)");
  std::map<std::string, std::map<int, std::string>> groups;
  for (auto& [n, v] : f32) {
    std::smatch m;
    if (std::regex_match(n, m, expert)) groups[m[1].str() + "switch_mlp." + m[3].str() + ".weight"][std::stoi(m[2])] = n;
  }
  for (auto& [stacked, parts] : groups) {
    std::vector<float> all;
    for (auto& [e, n] : parts) all.insert(all.end(), f32[n].begin(), f32[n].end());
    std::vector<int64_t> shape = shapes[parts.begin()->second];
    shape.insert(shape.begin(), static_cast<int64_t>(parts.size()));
    for (auto& [e, n] : parts) f32.erase(n), shapes.erase(n);
    f32[stacked] = std::move(all);
    shapes[stacked] = shape;
  }
}

}  // namespace keel::model::testing
