// Sampling: one row of logits to one token id, with one exact semantics on every backend.
//
// A row of V logits l with SampleParams {T, top_k, top_p, min_p, seed, counter}:
//   T == 0: the argmax, the lowest index on ties.
//   weights: w_i = floor(expf((l_i - max) / T) * 2^32) as an integer (the max weighs exactly 2^32); a token
//     whose weight rounds to 0 (more than ~22.2 T below the max, p < 2.4e-10) is never drawn.
//   top_k (0 < k < V): keep the tokens whose logit is >= the k-th largest (ties at the threshold all kept).
//   min_p: drop the tokens with w_i < min_p * 2^32 (below min_p times the most likely token's weight).
//   top_p < 1: of what is kept, with mass W = sum of w, keep the tokens whose logit is >= v, v the largest logit
//     at which the mass of the kept tokens at or above it reaches ceil(top_p * W) (ties at v all kept).
//   draw: u = 53-bit uniform in [0, 1) hashed from (seed, counter); target = floor(u * W_final); walk the kept
//     tokens in index order summing w and return the first whose running sum exceeds target.
// Logits are compared through a monotone uint32 key (NaN lowest, weight 0), and both thresholds are found by
// radix select (4 passes of 8-bit digits) on that key, with counts for top_k and integer masses for top_p.
// Integer masses make every sum independent of its order: a GPU and the CPU pick the same token unless their
// expf differ by an ulp where it matters. A seeded draw depends only on (seed, counter) and the row, so a
// sequence samples the same tokens alone or in any batch.
//
// The per-token pieces are KEEL_HD (host and device); the host reference below them is what the CPU backend and
// the engine's TokenChooser run, and what a GPU kernel (backend/cuda/sampling.cuh) is tested against.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__CUDACC__)
#define KEEL_HD __host__ __device__
#else
#define KEEL_HD
#endif

namespace keel::backend {

// One row's sampling parameters; validated upstream (engine::SamplingParams::validate).
struct SampleParams {
  float temperature = 0.0f;  // 0: greedy
  int32_t top_k = 0;         // 0 or >= vocab: off
  float top_p = 1.0f;        // 1: off
  float min_p = 0.0f;        // 0: off
  uint64_t seed = 0;
  uint64_t counter = 0;  // which draw of `seed`: the engine passes the tokens the sequence has generated so far
};

namespace sampling {

constexpr uint64_t kWeightOne = 1ull << 32;  // the weight of the largest logit
constexpr int kRadixBins = 256;
constexpr int kRadixPasses = 4;

KEEL_HD inline uint32_t float_bits(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(x);
#else
  uint32_t b;
  std::memcpy(&b, &x, sizeof(b));
  return b;
#endif
}

// Orders like the floats: NaN lowest (0), -0 equal to +0, -inf above NaN.
KEEL_HD inline uint32_t logit_key(float x) {
  if (x != x) return 0;
  uint32_t b = float_bits(x);
  if (b == 0x80000000u) b = 0;
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

// floor(expf((logit - max) / temperature) * 2^32); temperature > 0, max the row's largest non-NaN logit.
KEEL_HD inline uint64_t weight(float logit, float max, float temperature) {
  if (logit == max) return kWeightOne;  // also +inf, and every token of an all -inf row
  if (!(logit > -INFINITY)) return 0;   // -inf, NaN
  const float e = expf((logit - max) / temperature);
  if (!(e >= 0.0f)) return 0;
  return static_cast<uint64_t>(e * 4294967296.0f);  // exact: a power-of-two scale of a float <= 1
}

// min_p keeps a token when (double)w >= this.
KEEL_HD inline double min_p_floor(float min_p) { return static_cast<double>(min_p) * 4294967296.0; }

// The mass top_p must keep of `mass`: ceil(top_p * mass), in [1, mass].
KEEL_HD inline uint64_t top_p_need(float top_p, uint64_t mass) {
  const double need = ceil(static_cast<double>(top_p) * static_cast<double>(mass));
  if (need < 1.0) return 1;
  if (need >= static_cast<double>(mass)) return mass;
  return static_cast<uint64_t>(need);
}

// splitmix64: one step of its sequence from state z.
KEEL_HD inline uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// A uniform double in [0, 1) with 53 random bits, from (seed, counter) alone.
KEEL_HD inline double uniform(uint64_t seed, uint64_t counter) {
  return static_cast<double>(mix64(seed ^ mix64(counter)) >> 11) * 0x1.0p-53;
}

// Where the draw lands in [0, mass]: floor(u * mass) (mass <= 2^50, so exact in a double but for rounding of
// the product, which may give mass itself: the last kept token then).
KEEL_HD inline uint64_t draw_target(uint64_t seed, uint64_t counter, uint64_t mass) {
  return static_cast<uint64_t>(uniform(seed, counter) * static_cast<double>(mass));
}

// Radix select, most significant digit first.
KEEL_HD inline int radix_shift(int pass) { return 24 - 8 * pass; }
KEEL_HD inline int radix_digit(uint32_t key, int pass) { return static_cast<int>((key >> radix_shift(pass)) & 0xFFu); }
// Whether key agrees with prefix on the digits of the passes before `pass`.
KEEL_HD inline bool radix_matches(uint32_t key, uint32_t prefix, int pass) {
  return pass == 0 || (key >> (32 - 8 * pass)) == (prefix >> (32 - 8 * pass));
}

// ---- Host reference.

// The largest value's index, the lowest on ties.
inline int32_t argmax_row(const float* x, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; i++)
    if (x[i] > x[best]) best = i;
  return static_cast<int32_t>(best);
}

// The digit at which hist, summed from digit 255 down, reaches *want; *want becomes what remains inside it.
inline int radix_pick(const uint64_t* hist, uint64_t* want) {
  uint64_t above = 0;
  for (int d = kRadixBins - 1; d > 0; d--) {
    if (above + hist[d] >= *want) {
      *want -= above;
      return d;
    }
    above += hist[d];
  }
  *want -= above;
  return 0;
}

// What a draw at temperature > 0 chooses among: the tokens with key >= key_floor, (double)w >= min_w and w > 0.
struct RowFilter {
  float max = 0.0f;         // the largest non-NaN logit
  uint32_t top_k_key = 0;   // top_k's threshold key (0: no top_k)
  uint32_t key_floor = 0;   // top_p's threshold key (>= top_k_key; top_k_key without top_p)
  double min_w = 0.0;       // min_p_floor(min_p)
  uint64_t mass = 0;        // W_final: the kept tokens' summed weight
};

// Per-row keys and weights, reused across rows and steps.
struct SampleScratch {
  std::vector<uint32_t> key;
  std::vector<uint64_t> w;
};

// The thresholds of one row (temperature > 0); scratch then holds its keys and weights.
inline RowFilter filter_row(const float* x, int64_t n, const SampleParams& p, SampleScratch& s) {
  RowFilter f;
  f.max = -INFINITY;
  for (int64_t i = 0; i < n; i++)
    if (x[i] > f.max) f.max = x[i];
  s.key.resize(static_cast<size_t>(n));
  s.w.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; i++) {
    s.key[i] = logit_key(x[i]);
    s.w[i] = weight(x[i], f.max, p.temperature);
  }
  uint64_t hist[kRadixBins];
  if (p.top_k > 0 && p.top_k < n) {
    uint32_t prefix = 0;
    uint64_t want = static_cast<uint64_t>(p.top_k);
    for (int pass = 0; pass < kRadixPasses; pass++) {
      std::memset(hist, 0, sizeof(hist));
      for (int64_t i = 0; i < n; i++)
        if (radix_matches(s.key[i], prefix, pass)) hist[radix_digit(s.key[i], pass)]++;
      prefix |= static_cast<uint32_t>(radix_pick(hist, &want)) << radix_shift(pass);
    }
    f.top_k_key = prefix;
  }
  f.min_w = min_p_floor(p.min_p);
  auto kept = [&](int64_t i) {
    return s.key[i] >= f.top_k_key && static_cast<double>(s.w[i]) >= f.min_w;
  };
  uint64_t mass = 0;
  for (int64_t i = 0; i < n; i++)
    if (kept(i)) mass += s.w[i];
  f.key_floor = f.top_k_key;
  if (p.top_p < 1.0f && mass > 0) {
    uint32_t prefix = 0;
    uint64_t want = top_p_need(p.top_p, mass);
    for (int pass = 0; pass < kRadixPasses; pass++) {
      std::memset(hist, 0, sizeof(hist));
      for (int64_t i = 0; i < n; i++)
        if (radix_matches(s.key[i], prefix, pass) && kept(i)) hist[radix_digit(s.key[i], pass)] += s.w[i];
      prefix |= static_cast<uint32_t>(radix_pick(hist, &want)) << radix_shift(pass);
    }
    f.key_floor = prefix;
    mass = 0;
    for (int64_t i = 0; i < n; i++)
      if (s.key[i] >= f.key_floor && kept(i)) mass += s.w[i];
  }
  f.mass = mass;
  return f;
}

// One token of a row of n logits.
inline int32_t sample_row(const float* x, int64_t n, const SampleParams& p, SampleScratch& s) {
  if (!(p.temperature > 0.0f)) return argmax_row(x, n);
  const RowFilter f = filter_row(x, n, p, s);
  if (f.mass == 0) return argmax_row(x, n);  // every logit NaN
  const uint64_t target = draw_target(p.seed, p.counter, f.mass);
  uint64_t run = 0;
  int32_t last = 0;
  for (int64_t i = 0; i < n; i++) {
    if (s.w[i] == 0 || s.key[i] < f.key_floor || static_cast<double>(s.w[i]) < f.min_w) continue;
    run += s.w[i];
    last = static_cast<int32_t>(i);
    if (run > target) return last;
  }
  return last;
}

inline int32_t sample_row(const float* x, int64_t n, const SampleParams& p) {
  SampleScratch s;
  return sample_row(x, n, p, s);
}

}  // namespace sampling
}  // namespace keel::backend
