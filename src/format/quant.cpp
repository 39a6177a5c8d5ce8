#include "format/quant.h"

#include <cstring>

#include "base/check.h"

namespace keel::format {

namespace {

inline float f16_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, sizeof(h));
  return f16_to_float(h);
}

inline float scalar_at(DType dtype, const uint8_t* base, int64_t i) {
  float f;
  to_float(dtype, base + i * dtype_size(dtype), &f, 1);
  return f;
}

// ggml's get_scale_min_k4: the j-th 6-bit scale and min of a Q4_K/Q5_K super-block's 12 packed bytes.
inline void scale_min_k4(int j, const uint8_t* q, uint8_t* d, uint8_t* m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4);
  }
}

}  // namespace

const char* quant_kind_name(QuantKind kind) {
  switch (kind) {
    case QuantKind::kNone: return "none";
    case QuantKind::kMlxAffine: return "mlx-affine";
    case QuantKind::kQ8_0: return "Q8_0";
    case QuantKind::kQ4_0: return "Q4_0";
    case QuantKind::kQ4_K: return "Q4_K";
    case QuantKind::kQ5_K: return "Q5_K";
    case QuantKind::kQ6_K: return "Q6_K";
  }
  return "?";
}

BlockShape ggml_block(QuantKind kind) {
  switch (kind) {
    case QuantKind::kQ8_0: return {32, 2 + 32};
    case QuantKind::kQ4_0: return {32, 2 + 16};
    case QuantKind::kQ4_K: return {256, 2 + 2 + 12 + 128};
    case QuantKind::kQ5_K: return {256, 2 + 2 + 12 + 32 + 128};
    case QuantKind::kQ6_K: return {256, 128 + 64 + 16 + 2};
    default: return {};
  }
}

bool mlx_bits_supported(int bits) { return bits == 2 || bits == 3 || bits == 4 || bits == 5 || bits == 6 || bits == 8; }
bool mlx_group_supported(int group_size) { return group_size == 32 || group_size == 64 || group_size == 128; }

Status check_mlx_params(int bits, int group_size, const std::string& where) {
  if (!mlx_bits_supported(bits))
    return unsupported("{}: MLX affine bits={} is not supported (supported: 2, 3, 4, 5, 6, 8)", where, bits);
  if (!mlx_group_supported(group_size))
    return unsupported("{}: MLX affine group_size={} is not supported (supported: 32, 64, 128)", where, group_size);
  return Status();
}

size_t QuantMatrix::row_bytes() const {
  if (kind == QuantKind::kMlxAffine) return static_cast<size_t>(cols) * bits / 8;
  const BlockShape b = ggml_block(kind);
  return b.values == 0 ? 0 : static_cast<size_t>(cols / b.values) * b.bytes;
}

uint64_t QuantMatrix::bytes() const {
  uint64_t n = static_cast<uint64_t>(rows) * row_bytes();
  if (kind == QuantKind::kMlxAffine) n += 2ull * rows * (cols / group_size) * dtype_size(scale_dtype);
  return n;
}

QuantMatrix QuantMatrix::row_range(int64_t row0, int64_t n) const {
  QuantMatrix m = *this;
  m.rows = n;
  m.data = data + row0 * row_bytes();
  if (kind == QuantKind::kMlxAffine) {
    const int64_t per_row = cols / group_size * dtype_size(scale_dtype);
    m.scales = scales + row0 * per_row;
    m.biases = biases + row0 * per_row;
  }
  return m;
}

void unpack_mlx_codes(const uint8_t* packed, int bits, int64_t n, uint8_t* codes) {
  const uint32_t mask = (1u << bits) - 1;
  for (int64_t i = 0; i < n; i++) {
    const int64_t bit = i * bits;
    // A code spans at most two bytes (bits <= 8); the second is read only when the code reaches into it.
    uint32_t v = packed[bit >> 3];
    const int shift = static_cast<int>(bit & 7);
    if (shift + bits > 8) v |= static_cast<uint32_t>(packed[(bit >> 3) + 1]) << 8;
    codes[i] = static_cast<uint8_t>((v >> shift) & mask);
  }
}

void dequantize_q8_0(const uint8_t* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / 32; b++, x += 34) {
    const float d = f16_at(x);
    const int8_t* qs = reinterpret_cast<const int8_t*>(x + 2);
    for (int j = 0; j < 32; j++) *y++ = qs[j] * d;
  }
}

void dequantize_q4_0(const uint8_t* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / 32; b++, x += 18, y += 32) {
    const float d = f16_at(x);
    const uint8_t* qs = x + 2;
    for (int j = 0; j < 16; j++) {
      y[j] = ((qs[j] & 0x0F) - 8) * d;
      y[j + 16] = ((qs[j] >> 4) - 8) * d;
    }
  }
}

void dequantize_q4_k(const uint8_t* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / 256; b++, x += 144) {
    const float d = f16_at(x), min = f16_at(x + 2);
    const uint8_t* scales = x + 4;
    const uint8_t* q = x + 16;
    for (int j = 0, is = 0; j < 256; j += 64, q += 32, is += 2) {
      uint8_t sc, m;
      scale_min_k4(is, scales, &sc, &m);
      const float d1 = d * sc, m1 = min * m;
      scale_min_k4(is + 1, scales, &sc, &m);
      const float d2 = d * sc, m2 = min * m;
      for (int l = 0; l < 32; l++) *y++ = d1 * (q[l] & 0xF) - m1;
      for (int l = 0; l < 32; l++) *y++ = d2 * (q[l] >> 4) - m2;
    }
  }
}

void dequantize_q5_k(const uint8_t* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / 256; b++, x += 176) {
    const float d = f16_at(x), min = f16_at(x + 2);
    const uint8_t* scales = x + 4;
    const uint8_t* qh = x + 16;
    const uint8_t* ql = x + 48;
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0, is = 0; j < 256; j += 64, ql += 32, is += 2, u1 <<= 2, u2 <<= 2) {
      uint8_t sc, m;
      scale_min_k4(is, scales, &sc, &m);
      const float d1 = d * sc, m1 = min * m;
      scale_min_k4(is + 1, scales, &sc, &m);
      const float d2 = d * sc, m2 = min * m;
      for (int l = 0; l < 32; l++) *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
      for (int l = 0; l < 32; l++) *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
    }
  }
}

void dequantize_q6_k(const uint8_t* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / 256; b++, x += 210) {
    const uint8_t* ql = x;
    const uint8_t* qh = x + 128;
    const int8_t* sc = reinterpret_cast<const int8_t*>(x + 192);
    const float d = f16_at(x + 208);
    for (int half = 0; half < 2; half++, y += 128, ql += 64, qh += 32, sc += 8) {
      for (int l = 0; l < 32; l++) {
        const int is = l / 16;
        const int q1 = static_cast<int8_t>((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = static_cast<int8_t>((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = static_cast<int8_t>((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = static_cast<int8_t>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l + 0] = d * sc[is + 0] * q1;
        y[l + 32] = d * sc[is + 2] * q2;
        y[l + 64] = d * sc[is + 4] * q3;
        y[l + 96] = d * sc[is + 6] * q4;
      }
    }
  }
}

void dequantize_row(const QuantMatrix& m, int64_t row, float* out) {
  const uint8_t* packed = m.data + row * m.row_bytes();
  switch (m.kind) {
    case QuantKind::kMlxAffine: {
      const int64_t groups = m.cols / m.group_size;
      const uint32_t mask = (1u << m.bits) - 1;
      for (int64_t g = 0; g < groups; g++) {
        const float scale = scalar_at(m.scale_dtype, m.scales, row * groups + g);
        const float bias = scalar_at(m.scale_dtype, m.biases, row * groups + g);
        for (int64_t i = g * m.group_size; i < (g + 1) * m.group_size; i++) {
          const int64_t bit = i * m.bits;
          uint32_t v = packed[bit >> 3];
          const int shift = static_cast<int>(bit & 7);
          if (shift + m.bits > 8) v |= static_cast<uint32_t>(packed[(bit >> 3) + 1]) << 8;
          out[i] = scale * static_cast<float>((v >> shift) & mask) + bias;
        }
      }
      return;
    }
    case QuantKind::kQ8_0: return dequantize_q8_0(packed, out, m.cols);
    case QuantKind::kQ4_0: return dequantize_q4_0(packed, out, m.cols);
    case QuantKind::kQ4_K: return dequantize_q4_k(packed, out, m.cols);
    case QuantKind::kQ5_K: return dequantize_q5_k(packed, out, m.cols);
    case QuantKind::kQ6_K: return dequantize_q6_k(packed, out, m.cols);
    case QuantKind::kNone: break;
  }
  KEEL_CHECK(false, "dequantize_row of a matrix that is not quantized");
}

}  // namespace keel::format
