// Sampling on the device with backend/sampling.h's exact semantics, so a decode step at temperature > 0 copies one
// int32 per sequence off the GPU instead of [rows, vocab] floats.
//
// One CTA of 1024 threads per row; the row (<= 1 MiB at a 262144 vocab) stays in L2 over the passes:
//   1. max (and the argmax, which is the whole answer at temperature 0);
//   2. top_k: the k-th largest key by radix select, 4 passes of 8-bit digits with counts;
//   3. top_p: the same radix select with the kept tokens' integer masses (pass 1 also gives the mass W);
//   4. the draw: the block narrows [0, vocab) to the token by prefix sums of contiguous per-thread chunks, in
//      index order, until one token is left (two rounds up to 1M tokens).
// Histograms live in shared memory and only integers are added, so the order of the atomics cannot change a
// result: the CPU reference (sampling::sample_row) picks the same token unless expf differs by an ulp.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda/argmax.cuh"
#include "backend/sampling.h"

namespace keel::backend::cuda {

constexpr int kSampleThreads = 1024;
constexpr int kSampleWarps = kSampleThreads / 32;
static_assert(kSampleWarps == 32, "the block scans hold one warp total per lane of warp 0");
static_assert(sampling::kRadixBins == 8 * 32, "a digit pick gives each lane of one warp 8 bins");

namespace sample_kernel {

using u64 = unsigned long long;  // the type of CUDA's 64-bit atomics and shuffles (uint64_t is unsigned long)
constexpr unsigned kFullMask = 0xffffffffu;

struct Shared {
  u64 mass[sampling::kRadixBins];
  unsigned count[sampling::kRadixBins];
  u64 warp_sum[kSampleWarps];
  float warp_max[kSampleWarps];
  float warp_best_v[kSampleWarps];
  int warp_best_i[kSampleWarps];
  // Written by one thread, read by all after a barrier.
  u64 want, target;
  int digit, last, lo, hi;
};

__device__ __forceinline__ int lane_id() { return static_cast<int>(threadIdx.x & 31); }

// The row's largest non-NaN value (-inf if none) and its argmax (argmax_rows_kernel's rule), on every thread.
__device__ void row_max(const float* x, int vocab, Shared& s, float* max_out, int* argmax_out) {
  float m = -INFINITY, best_v = -INFINITY;
  int best_i = vocab;  // beyond every real index: any value wins over it
  for (int i = threadIdx.x; i < vocab; i += kSampleThreads) {
    const float v = x[i];
    m = fmaxf(m, v);
    if (argmax_better(v, i, best_v, best_i) || best_i == vocab) best_v = v, best_i = i;
  }
  for (int o = 16; o > 0; o >>= 1) {
    m = fmaxf(m, __shfl_xor_sync(kFullMask, m, o));
    const float v = __shfl_xor_sync(kFullMask, best_v, o);
    const int i = __shfl_xor_sync(kFullMask, best_i, o);
    if (argmax_better(v, i, best_v, best_i)) best_v = v, best_i = i;
  }
  const int warp = threadIdx.x / 32;
  if (lane_id() == 0) s.warp_max[warp] = m, s.warp_best_v[warp] = best_v, s.warp_best_i[warp] = best_i;
  __syncthreads();
  m = s.warp_max[0], best_v = s.warp_best_v[0], best_i = s.warp_best_i[0];
  for (int w = 1; w < kSampleWarps; w++) {
    m = fmaxf(m, s.warp_max[w]);
    if (argmax_better(s.warp_best_v[w], s.warp_best_i[w], best_v, best_i))
      best_v = s.warp_best_v[w], best_i = s.warp_best_i[w];
  }
  *max_out = m;
  *argmax_out = best_i;
}

// hist[digit] += 1 for each valid lane, one shared atomic per distinct digit of the warp: logits crowd into a few
// top digits (sign and exponent), where 32 lanes adding to one counter would serialise. All 32 lanes call it.
__device__ __forceinline__ void warp_add_count(unsigned* hist, bool valid, int digit) {
  const unsigned peers = __match_any_sync(kFullMask, valid ? digit : -1);
  if (valid && lane_id() == __ffs(peers) - 1) atomicAdd(&hist[digit], static_cast<unsigned>(__popc(peers)));
}

// hist[digit] += amount (<= 2^32) likewise: the lanes of one digit sum their amounts' 16-bit halves (each sum
// < 2^22) and one of them adds the total. Every lane reduces within its group, the invalid lanes' adding nothing
// (cooperative groups' labeled_partition + reduce, by hand).
__device__ __forceinline__ void warp_add_mass(u64* hist, bool valid, int digit, u64 amount) {
  const unsigned peers = __match_any_sync(kFullMask, valid ? digit : -1);
#if __CUDA_ARCH__ >= 800
  const unsigned lo = __reduce_add_sync(peers, valid ? static_cast<unsigned>(amount & 0xFFFFu) : 0u);
  const unsigned hi = __reduce_add_sync(peers, valid ? static_cast<unsigned>(amount >> 16) : 0u);
  if (valid && lane_id() == __ffs(peers) - 1) atomicAdd(&hist[digit], (static_cast<u64>(hi) << 16) + lo);
#else
  if (valid) atomicAdd(&hist[digit], amount);
#endif
}

// Warp 0: the digit at which hist, summed from digit 255 down, reaches want (sampling::radix_pick), into s.digit
// and what remains inside it into s.want. Each lane holds 8 bins; a suffix scan finds the lane of the crossing.
// top_p > 0: want is top_p_need(top_p, the histogram's total) instead (the first top_p pass).
template <typename T>
__device__ void pick_digit(const T* hist, u64 want, float top_p, Shared& s) {
  const int lane = lane_id();
  u64 mine = 0;
  for (int j = 0; j < 8; j++) mine += hist[lane * 8 + j];
  u64 from = mine;  // bins of this lane and the lanes above it
  for (int o = 1; o < 32; o <<= 1) {
    const u64 t = __shfl_down_sync(kFullMask, from, o);
    if (lane + o < 32) from += t;
  }
  if (top_p > 0.0f) want = sampling::top_p_need(top_p, __shfl_sync(kFullMask, from, 0));
  if (lane == 0) s.digit = 0, s.want = want;  // no crossing: only when want exceeds the total (all NaN)
  __syncwarp();
  u64 above = from - mine;
  if (above < want && want <= from) {
    for (int d = lane * 8 + 7; d >= lane * 8; d--) {
      if (above + hist[d] >= want) {
        s.digit = d, s.want = want - above;
        break;
      }
      above += hist[d];
    }
  }
}

// The largest key at which the candidates at or above it reach `want`: by count (top_k; every token a
// candidate), or by mass (top_p; candidates key >= k_key and w >= min_w, want from the mass).
template <bool kMass>
__device__ uint32_t radix_select(const float* x, int vocab, u64 want, float top_p, uint32_t k_key, double min_w,
                                 float top, float temperature, Shared& s) {
  uint32_t prefix = 0;
  for (int pass = 0; pass < sampling::kRadixPasses; pass++) {
    for (int d = threadIdx.x; d < sampling::kRadixBins; d += kSampleThreads) s.count[d] = 0, s.mass[d] = 0;
    __syncthreads();
    // Uniform trip count, so that every lane of a warp reaches the warp-wide adds.
    for (int base = 0; base < vocab; base += kSampleThreads) {
      const int i = base + static_cast<int>(threadIdx.x);
      bool valid = false;
      uint32_t key = 0;
      u64 w = 0;
      if (i < vocab) {
        const float v = x[i];
        key = sampling::logit_key(v);
        valid = sampling::radix_matches(key, prefix, pass);
        if (kMass && valid) {
          valid = key >= k_key;
          if (valid) {
            w = sampling::weight(v, top, temperature);
            valid = static_cast<double>(w) >= min_w && w > 0;
          }
        }
      }
      if (kMass) warp_add_mass(s.mass, valid, sampling::radix_digit(key, pass), w);
      else warp_add_count(s.count, valid, sampling::radix_digit(key, pass));
    }
    __syncthreads();
    if (threadIdx.x < 32) {
      if (kMass) pick_digit(s.mass, want, pass == 0 ? top_p : 0.0f, s);
      else pick_digit(s.count, want, 0.0f, s);
    }
    __syncthreads();
    prefix |= static_cast<uint32_t>(s.digit) << sampling::radix_shift(pass);
    want = s.want;
  }
  return prefix;
}

// Exclusive prefix sum of one value per thread in thread order; *total gets the sum of all.
__device__ u64 block_exclusive_scan(u64 v, Shared& s, u64* total) {
  const int lane = lane_id(), warp = threadIdx.x / 32;
  u64 incl = v;
  for (int o = 1; o < 32; o <<= 1) {
    const u64 t = __shfl_up_sync(kFullMask, incl, o);
    if (lane >= o) incl += t;
  }
  if (lane == 31) s.warp_sum[warp] = incl;
  __syncthreads();
  if (warp == 0) {
    u64 w = s.warp_sum[lane];
    for (int o = 1; o < 32; o <<= 1) {
      const u64 t = __shfl_up_sync(kFullMask, w, o);
      if (lane >= o) w += t;
    }
    s.warp_sum[lane] = w;
  }
  __syncthreads();
  *total = s.warp_sum[kSampleWarps - 1];
  return (warp > 0 ? s.warp_sum[warp - 1] : 0) + incl - v;
}

// A kept token's weight, 0 for the others.
__device__ __forceinline__ u64 kept_weight(float v, float top, float temperature, uint32_t key_floor, double min_w) {
  if (sampling::logit_key(v) < key_floor) return 0;
  const u64 w = sampling::weight(v, top, temperature);
  return static_cast<double>(w) >= min_w ? w : 0;
}

// The draw over the kept tokens, in index order; argmax when nothing is kept (every logit NaN). s.last must be -1
// on entry, with a barrier since.
__device__ int draw(const float* x, int vocab, const SampleParams& p, float top, int argmax, uint32_t key_floor,
                    double min_w, Shared& s) {
  int lo = 0, hi = vocab;
  u64 target = 0;
  for (bool first = true; hi - lo > 1; first = false) {
    const int chunk = (hi - lo + kSampleThreads - 1) / kSampleThreads;
    const int a = min(lo + static_cast<int>(threadIdx.x) * chunk, hi), b = min(a + chunk, hi);
    u64 sum = 0;
    int last = -1;
    for (int i = a; i < b; i++) {
      const u64 w = kept_weight(x[i], top, p.temperature, key_floor, min_w);
      sum += w;
      if (w > 0) last = i;
    }
    if (first && last >= 0) atomicMax(&s.last, last);
    if (threadIdx.x == 0) s.lo = lo, s.hi = lo + 1;  // overwritten by the owner below; ends the loop if none
    u64 total = 0;
    const u64 before = block_exclusive_scan(sum, s, &total);
    if (first) {
      if (total == 0) return argmax;
      target = sampling::draw_target(p.seed, p.counter, total);
      if (target >= total) return s.last;  // u * W rounded up to W: the last kept token
    }
    if (sum > 0 && before <= target && target - before < sum) s.lo = a, s.hi = b, s.target = target - before;
    __syncthreads();
    lo = s.lo, hi = s.hi, target = s.target;
    __syncthreads();
  }
  return lo;
}

}  // namespace sample_kernel

// One block of kSampleThreads per row of logits F32 [rows, vocab]; out[row] the token (backend/sampling.h).
// (1024, 1): ptxas may use 64 registers a thread (51 on sm_90); with (1024) alone it kept 32 and spilled 76 bytes.
__global__ void __launch_bounds__(kSampleThreads, 1)
    sample_rows_kernel(const float* __restrict__ logits, int vocab, const SampleParams* __restrict__ params,
                       int32_t* __restrict__ out) {
  using namespace sample_kernel;
  __shared__ Shared s;
  const float* x = logits + static_cast<int64_t>(blockIdx.x) * vocab;
  const SampleParams p = params[blockIdx.x];
  if (threadIdx.x == 0) s.last = -1;  // for draw, behind row_max's barrier
  float top;
  int argmax;
  row_max(x, vocab, s, &top, &argmax);
  int token = argmax;
  if (p.temperature > 0.0f) {
    uint32_t k_key = 0;
    if (p.top_k > 0 && p.top_k < vocab)
      k_key = radix_select<false>(x, vocab, static_cast<u64>(p.top_k), 0.0f, 0, 0.0, top, p.temperature, s);
    const double min_w = sampling::min_p_floor(p.min_p);
    uint32_t key_floor = k_key;
    if (p.top_p < 1.0f) {
      const uint32_t p_key = radix_select<true>(x, vocab, 0, p.top_p, k_key, min_w, top, p.temperature, s);
      key_floor = p_key > key_floor ? p_key : key_floor;
    }
    token = draw(x, vocab, p, top, argmax, key_floor, min_w, s);
  }
  if (threadIdx.x == 0) out[blockIdx.x] = token;
}

}  // namespace keel::backend::cuda
