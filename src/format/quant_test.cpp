// The dequantizers against blocks written by hand from the format definitions (ggml-common.h's block structs and
// ggml-quants.c's dequantize_row_*, mlx's packing in backend/cpu/quantized.cpp): every expected value below is
// worked out from the definition, not by running keel's code.
#include "format/quant.h"

#include <gtest/gtest.h>

#include <vector>

namespace keel::format {
namespace {

// f16 bit patterns: 1.0 = 0x3C00, 2.0 = 0x4000, 0.5 = 0x3800, 0.25 = 0x3400.
void put_f16(std::vector<uint8_t>& b, size_t at, uint16_t bits) {
  b[at] = bits & 0xff;
  b[at + 1] = bits >> 8;
}

TEST(GgufBlocks, Q8_0IsScaleTimesSignedByte) {
  std::vector<uint8_t> b(34, 0);
  put_f16(b, 0, 0x4000);  // d = 2
  b[2] = 0xFD;            // -3
  b[3] = 5;
  b[33] = 0x80;  // -128
  std::vector<float> y(32);
  dequantize_q8_0(b.data(), y.data(), 32);
  EXPECT_EQ(y[0], -6.0f);
  EXPECT_EQ(y[1], 10.0f);
  EXPECT_EQ(y[2], 0.0f);
  EXPECT_EQ(y[31], -256.0f);
}

TEST(GgufBlocks, Q4_0LowNibblesFirstHalfHighNibblesSecondHalfMinusEight) {
  std::vector<uint8_t> b(18, 0x88);  // every code 8 -> 0
  put_f16(b, 0, 0x3800);             // d = 0.5
  b[2] = 0x9F;                       // value 0: 15-8 = 7; value 16: 9-8 = 1
  b[17] = 0x03;                      // value 15: 3-8 = -5; value 31: 0-8 = -8
  std::vector<float> y(32);
  dequantize_q4_0(b.data(), y.data(), 32);
  EXPECT_EQ(y[0], 3.5f);
  EXPECT_EQ(y[16], 0.5f);
  EXPECT_EQ(y[15], -2.5f);
  EXPECT_EQ(y[31], -4.0f);
  EXPECT_EQ(y[1], 0.0f);
}

// Q4_K: d, dmin (f16), 12 bytes of 6-bit scales/mins, 128 bytes of nibbles. Sub-block j (32 values) uses
// scale/min j: for j < 4 sc = s[j] & 63, m = s[j+4] & 63; else sc = (s[j+4] & 15) | (s[j-4] >> 6) << 4,
// m = (s[j+4] >> 4) | (s[j] >> 6) << 4. Sub-blocks 2i and 2i+1 share bytes qs[32i..32i+31]: low, then high nibble.
TEST(GgufBlocks, Q4_KSixBitScalesAndMins) {
  std::vector<uint8_t> b(144, 0);
  put_f16(b, 0, 0x3C00);  // d = 1
  put_f16(b, 2, 0x3800);  // dmin = 0.5
  uint8_t* s = b.data() + 4;
  s[0] = 3;                  // sub-block 0: sc 3
  s[4] = 2;                  // sub-block 0: m 2
  s[1] = 0x40 | 5;           // sub-block 1: sc 5; its top bits feed sub-block 5's scale high bits (1 << 4)
  s[5] = 0x80 | 1;           // sub-block 1: m 1; top bits (2) feed sub-block 5's min high bits (2 << 4)
  s[9] = 0x7 | (0x3 << 4);   // sub-block 5: sc low 7, m low 3 -> sc = 7 | 16 = 23, m = 3 | 32 = 35
  uint8_t* q = b.data() + 16;
  q[0] = 0xA7;   // value 0 (sub-block 0): 7; value 32 (sub-block 1): 10
  q[64] = 0x0;   // sub-block 4 value 0 -> sub-block 4 has sc 0, m 0
  q[64 + 1] = 0xC0;  // value 161 (sub-block 5, index 1): 12
  std::vector<float> y(256);
  dequantize_q4_k(b.data(), y.data(), 256);
  EXPECT_EQ(y[0], 1.0f * 3 * 7 - 0.5f * 2);    // 20
  EXPECT_EQ(y[1], -1.0f);                       // code 0: -m1
  EXPECT_EQ(y[32], 1.0f * 5 * 10 - 0.5f * 1);  // 49.5
  EXPECT_EQ(y[161], 1.0f * 23 * 12 - 0.5f * 35);  // 258.5
  EXPECT_EQ(y[160], -0.5f * 35);
  EXPECT_EQ(y[128], 0.0f);
}

// Q5_K: as Q4_K plus a fifth bit: qh[l] bit 2i for value l of sub-block 2i, bit 2i+1 for sub-block 2i+1.
TEST(GgufBlocks, Q5_KHighBitFromQh) {
  std::vector<uint8_t> b(176, 0);
  put_f16(b, 0, 0x3C00);  // d = 1
  put_f16(b, 2, 0x3400);  // dmin = 0.25
  uint8_t* s = b.data() + 4;
  s[0] = 1, s[4] = 4;  // sub-block 0: sc 1, m 4
  s[3] = 2, s[7] = 0;  // sub-block 3: sc 2, m 0
  uint8_t* qh = b.data() + 16;
  uint8_t* ql = b.data() + 48;
  qh[0] = 0x01;       // value 0 gets +16
  ql[0] = 0x03;       // value 0 low nibble 3
  qh[5] = 0x08;       // bit 3: sub-block 3, value 5 -> index 96 + 5
  ql[32 + 5] = 0x20;  // sub-block 3 is the high nibble of ql[32..63]: 2
  std::vector<float> y(256);
  dequantize_q5_k(b.data(), y.data(), 256);
  EXPECT_EQ(y[0], 1.0f * 1 * (3 + 16) - 0.25f * 4);  // 18
  EXPECT_EQ(y[1], -1.0f);
  EXPECT_EQ(y[101], 1.0f * 2 * (2 + 16));  // 36
  EXPECT_EQ(y[100], 0.0f);
}

// Q6_K: ql[128] low nibbles, qh[64] 2-bit highs, 16 int8 scales, f16 d. In each 128-value half, value l + 32k
// (k = 0..3) takes ql[l] low, ql[l+32] low, ql[l] high, ql[l+32] high, with qh[l] bits 2k..2k+1, minus 32, times
// d * scales[l/16 + 2k].
TEST(GgufBlocks, Q6_KInterleavedHalves) {
  std::vector<uint8_t> b(210, 0);
  put_f16(b, 208, 0x3800);  // d = 0.5
  int8_t* sc = reinterpret_cast<int8_t*>(b.data() + 192);
  sc[0] = 2, sc[2] = -1, sc[4] = 3, sc[6] = 1, sc[9] = 4;
  uint8_t* ql = b.data();
  uint8_t* qh = b.data() + 128;
  ql[0] = 0x5F;          // value 0 low 15, value 64 low 5
  qh[0] = 0x3 | (0x2 << 4);  // value 0 high 3 -> 63; value 64 high 2 -> 37
  ql[32] = 0x01;         // value 32: low 1, high bits 0 -> 1
  // second half: value 128 + 16 + 0 = 144 uses ql[64 + 16], qh[32 + 16], scale index 1 + 8 = 9
  ql[64 + 16] = 0x0A;
  qh[32 + 16] = 0x1;     // 10 | 16 = 26
  std::vector<float> y(256);
  dequantize_q6_k(b.data(), y.data(), 256);
  EXPECT_EQ(y[0], 0.5f * 2 * (63 - 32));   // 31
  EXPECT_EQ(y[32], 0.5f * -1 * (1 - 32));  // 15.5
  EXPECT_EQ(y[64], 0.5f * 3 * (37 - 32));  // 7.5
  EXPECT_EQ(y[96], 0.5f * 1 * (0 - 32));   // -16
  EXPECT_EQ(y[144], 0.5f * 4 * (26 - 32));  // -12
}

// MLX: 4-bit codes are nibbles of little-endian uint32 words, lowest first; 3-bit codes come 8 to 3 bytes
// (mlx's extract_bits: w0 = b0 & 7, w1 = (b0 >> 3) & 7, w2 = (b0 >> 6) | (b1 & 1) << 2, ...).
TEST(MlxAffine, CodesAreALittleEndianBitStream) {
  const uint8_t four[4] = {0x21, 0x43, 0x65, 0x87};  // the word 0x87654321: codes 1..8
  uint8_t codes[8];
  unpack_mlx_codes(four, 4, 8, codes);
  for (int i = 0; i < 8; i++) EXPECT_EQ(codes[i], i + 1);
  // 3-bit codes 1,2,3,4,5,6,7,0, bit stream (LSB first): 1,0,0, 0,1,0, 1,1,0, 0,0,1, 1,0,1, 0,1,1, 1,1,1, 0,0,0
  // byte0 bits0..7 = 1,0,0,0,1,0,1,1 = 0xD1; byte1 = 0,0,0,1,1,0,1,0 = 0x58; byte2 = 1,1,1,1,1,0,0,0 = 0x1F
  const uint8_t three[3] = {0xD1, 0x58, 0x1F};
  unpack_mlx_codes(three, 3, 8, codes);
  const uint8_t want3[8] = {1, 2, 3, 4, 5, 6, 7, 0};
  for (int i = 0; i < 8; i++) EXPECT_EQ(codes[i], want3[i]) << i;
  // 6-bit codes 63, 1, 32, 5 (mlx: 4 codes in 3 bytes): stream 111111 100000 000001 101000
  // byte0 = 1,1,1,1,1,1,1,0 = 0x7F; byte1 = 0,0,0,0,0,0,0,0 = 0x00; byte2 = 0,1,1,0,1,0,0,0 = 0x16
  const uint8_t six[3] = {0x7F, 0x00, 0x16};
  unpack_mlx_codes(six, 6, 4, codes);
  EXPECT_EQ(codes[0], 63);
  EXPECT_EQ(codes[1], 1);
  EXPECT_EQ(codes[2], 32);
  EXPECT_EQ(codes[3], 5);
  // 5-bit codes 31, 0, 17, 2, 9, 30, 1, 16 (8 codes in 5 bytes):
  // stream 11111 00000 10001 01000 10010 01111 10000 00001
  // byte0 = 1,1,1,1,1,0,0,0 = 0x1F; byte1 = 0,0,1,0,0,0,1,0 = 0x44; byte2 = 1,0,0,0,1,0,0,1 = 0x91;
  // byte3 = 0,0,1,1,1,1,1,0 = 0x7C; byte4 = 0,0,0,0,0,0,0,1 = 0x80
  const uint8_t five[5] = {0x1F, 0x44, 0x91, 0x7C, 0x80};
  unpack_mlx_codes(five, 5, 8, codes);
  const uint8_t want5[8] = {31, 0, 17, 2, 9, 30, 1, 16};
  for (int i = 0; i < 8; i++) EXPECT_EQ(codes[i], want5[i]) << i;
}

TEST(MlxAffine, RowIsScaleTimesCodePlusBiasPerGroup) {
  // 2 rows x 64 values, 8-bit, group 32: row 1's second group has scale 0.5, bias -1 (bf16 0x3F00, 0xBF80).
  std::vector<uint8_t> packed(2 * 64, 0);
  packed[64 + 32] = 10;
  packed[64 + 63] = 255;
  const uint16_t scales[4] = {0x3F80, 0x3F80, 0x3F80, 0x3F00};  // 1, 1, 1, 0.5
  const uint16_t biases[4] = {0, 0, 0, 0xBF80};                 // 0, 0, 0, -1
  QuantMatrix m;
  m.kind = QuantKind::kMlxAffine;
  m.bits = 8;
  m.group_size = 32;
  m.rows = 2;
  m.cols = 64;
  m.data = packed.data();
  m.scales = reinterpret_cast<const uint8_t*>(scales);
  m.biases = reinterpret_cast<const uint8_t*>(biases);
  m.scale_dtype = DType::kBF16;
  std::vector<float> y(64);
  dequantize_row(m, 1, y.data());
  EXPECT_EQ(y[0], 0.0f);
  EXPECT_EQ(y[32], 4.0f);
  EXPECT_EQ(y[33], -1.0f);
  EXPECT_EQ(y[63], 126.5f);
  EXPECT_EQ(m.row_bytes(), 64u);
  EXPECT_EQ(m.bytes(), 2u * 64 + 2 * 4 * 2);
  QuantMatrix second = m.row_range(1, 1);
  dequantize_row(second, 0, y.data());
  EXPECT_EQ(y[63], 126.5f);
}

TEST(MlxAffine, UnsupportedParamsNameWhatIsSupported) {
  Status s = check_mlx_params(7, 64, "config.json");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("bits=7"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("2, 3, 4, 5, 6, 8"), std::string::npos) << s.message();
  s = check_mlx_params(4, 16, "config.json");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("32, 64, 128"), std::string::npos) << s.message();
  EXPECT_TRUE(check_mlx_params(3, 128, "x").ok());
}

}  // namespace
}  // namespace keel::format
