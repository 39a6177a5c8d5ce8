// Quantized weight layouts, described once and dequantized exactly (docs/MODELS.md has the byte layouts).
//
// A QuantMatrix is a [rows, cols] weight whose rows are stored packed, one after another:
//  - MLX affine (mlx.core.quantize, mode "affine"): each row is a little-endian bit stream of `bits`-bit codes,
//    value i in bits [i*bits, (i+1)*bits) (for 2/4/8 bits that is 32/bits codes per uint32, lowest bits first; 3,
//    5 and 6 bits straddle words exactly as mlx packs them into 3/5/3-byte packs). Each group of `group_size`
//    values of a row has a scale and a bias (F32/F16/BF16, [rows, cols/group_size]): w = scale * q + bias.
//  - GGUF blocks (ggml-common.h, ggml-quants.c dequantize_row_*): Q8_0 and Q4_0 (32 values a block, one f16
//    scale), Q4_K, Q5_K, Q6_K (256-value super-blocks). A row is cols / block_values blocks.
// Dequantized values are computed in f32 in the reference's own order of operations, so the CPU oracle's
// weights equal numpy's and ggml's dequantized weights bit for bit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "base/dtype.h"
#include "base/status.h"

namespace keel::format {

enum class QuantKind : uint8_t { kNone, kMlxAffine, kQ8_0, kQ4_0, kQ4_K, kQ5_K, kQ6_K };

const char* quant_kind_name(QuantKind kind);  // "mlx-affine", "Q8_0", ...

// GGUF block geometry: values per block and bytes per block.
struct BlockShape {
  int values = 0;
  int bytes = 0;
};
BlockShape ggml_block(QuantKind kind);

// MLX affine parameters keel supports; anything else is refused with this list.
bool mlx_bits_supported(int bits);
bool mlx_group_supported(int group_size);
Status check_mlx_params(int bits, int group_size, const std::string& where);

struct QuantMatrix {
  QuantKind kind = QuantKind::kNone;
  int bits = 0;        // MLX: 2..8; GGUF: informational (8, 4, 4, 5, 6)
  int group_size = 0;  // MLX group; GGUF: values per block
  int64_t rows = 0, cols = 0;
  const uint8_t* data = nullptr;  // row r at data + r * row_bytes()
  // MLX only: [rows, cols / group_size] each, in scale_dtype.
  const uint8_t* scales = nullptr;
  const uint8_t* biases = nullptr;
  DType scale_dtype = DType::kBF16;

  size_t row_bytes() const;
  // Bytes it holds (packed codes, plus scales and biases for MLX).
  uint64_t bytes() const;
  // Rows [row0, row0 + n) as a matrix of their own (views of the same bytes).
  QuantMatrix row_range(int64_t row0, int64_t n) const;
};

// Row `row` of `m` as cols floats.
void dequantize_row(const QuantMatrix& m, int64_t row, float* out);

// The GGUF block dequantizers: `n` values (a multiple of the block) from `blocks`.
void dequantize_q8_0(const uint8_t* blocks, float* out, int64_t n);
void dequantize_q4_0(const uint8_t* blocks, float* out, int64_t n);
void dequantize_q4_k(const uint8_t* blocks, float* out, int64_t n);
void dequantize_q5_k(const uint8_t* blocks, float* out, int64_t n);
void dequantize_q6_k(const uint8_t* blocks, float* out, int64_t n);

// MLX affine codes of one packed row: `n` codes of `bits` bits from `packed`.
void unpack_mlx_codes(const uint8_t* packed, int bits, int64_t n, uint8_t* codes);

}  // namespace keel::format
