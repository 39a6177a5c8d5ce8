// Element types of weights and activations, and their conversions to float.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "base/status.h"

namespace keel {

// kU8 and kU32 hold packed quantized weights (GGUF blocks, MLX affine words); they are never computed in, and
// to_float() refuses them: format/quant.h turns them into floats.
enum class DType : uint8_t { kF32, kF16, kBF16, kU8, kU32 };

size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);  // "F32", "F16", "BF16", "U8", "U32" as safetensors spells them
Result<DType> parse_dtype(std::string_view safetensors_name);

inline float bf16_to_float(uint16_t bits) {
  uint32_t u = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

// Round-to-nearest-even, NaN preserved.
inline uint16_t float_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

float f16_to_float(uint16_t bits);
uint16_t float_to_f16(float f);

// Converts n elements of `dtype` at `src` to float.
void to_float(DType dtype, const void* src, float* dst, size_t n);

}  // namespace keel
