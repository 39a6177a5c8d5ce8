// The CUDA moe op against the CPU oracle: routing (softmax, top-k, renormalisation) and experts over many
// shapes, on both of its paths (fused kernels; grouped cuBLAS GEMMs for large eager batches), in a captured
// graph, and batch-invariant. Inputs and weights are rounded to the compute dtype before the oracle sees them,
// so both sides compute on the same numbers. Tolerances (relative L2): F32 1e-5; BF16 fused 1e-4 (F32
// accumulation and F32 intermediate activations, as the oracle); BF16 grouped 1e-2 (its intermediate
// activations are BF16, the GEMMs' input type).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "backend/cpu/cpu_backend.h"
#include "backend/cuda/cuda_backend.h"
#include "base/test_util.h"

namespace keel::backend {

namespace {

#define REQUIRE_GPU()                                                       \
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device visible"

struct MoeCase {
  int experts, top_k, tokens, hidden, inter;
  bool norm;
  bool missing = false;  // every third expert held by another rank (empty tensors)
};

// Normal(0, scale^2) values, exactly representable in `dtype`.
std::vector<float> random_values(size_t n, float scale, DType dtype, std::mt19937& rng) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) {
    x = d(rng);
    if (dtype == DType::kBF16) x = bf16_to_float(float_to_bf16(x));
  }
  return v;
}

// One MoE layer's host weights, bound into any backend.
struct HostMoe {
  std::vector<float> router;
  std::vector<std::vector<float>> gate, up, down;  // per expert; empty: another rank's

  HostMoe(const MoeCase& c, DType dtype, std::mt19937& rng) {
    // Router logits ~ N(0, 1): routing weights spread over several experts, as trained routers give.
    router = random_values(static_cast<size_t>(c.experts) * c.hidden, 1.0f / std::sqrt(c.hidden), dtype, rng);
    for (int e = 0; e < c.experts; e++) {
      const bool here = !(c.missing && e % 3 == 1);
      const size_t n = here ? static_cast<size_t>(c.inter) * c.hidden : 0;
      gate.push_back(random_values(n, 1.0f / std::sqrt(c.hidden), dtype, rng));
      up.push_back(random_values(n, 1.0f / std::sqrt(c.hidden), dtype, rng));
      down.push_back(random_values(n, 1.0f / std::sqrt(c.inter), dtype, rng));
    }
  }

  MoeWeights bind(Backend& b, const MoeCase& c) const {
    MoeWeights w;
    w.router = *b.weight(DType::kF32, c.experts, c.hidden, router.data());
    for (int e = 0; e < c.experts; e++) {
      ExpertWeights ex;
      if (!gate[e].empty()) {
        ex.gate = *b.weight(DType::kF32, c.inter, c.hidden, gate[e].data());
        ex.up = *b.weight(DType::kF32, c.inter, c.hidden, up[e].data());
        ex.down = *b.weight(DType::kF32, c.hidden, c.inter, down[e].data());
      }
      w.experts.push_back(ex);
    }
    w.top_k = c.top_k;
    w.norm_topk_prob = c.norm;
    w.activation = GluActivation::kSilu;
    return w;
  }
};

ForwardLimits moe_limits(const MoeCase& c, int max_tokens) {
  ForwardLimits l;
  l.max_tokens = max_tokens;
  l.max_seqs = 1;
  l.max_block_table_entries = 1;
  l.hidden = c.hidden;
  l.max_fused_cols = 2 * c.inter;
  l.num_experts = c.experts;
  l.experts_per_token = c.top_k;
  l.moe_intermediate = c.inter;
  return l;
}

std::vector<float> read(Backend& b, const Tensor& t) {
  std::vector<float> v(t.numel());
  b.copy_to_host(t, v.data());
  return v;
}

// The oracle's output for x [tokens, hidden].
std::vector<float> cpu_moe(const MoeCase& c, const HostMoe& h, std::vector<float> x) {
  auto cpu = make_cpu_backend();
  EXPECT_TRUE(cpu->reserve_forward(moe_limits(c, c.tokens)).ok());
  MoeWeights w = h.bind(*cpu, c);
  Tensor xt = *cpu->alloc(DType::kF32, c.tokens, c.hidden), out = *cpu->alloc(DType::kF32, c.tokens, c.hidden);
  cpu->copy_from_host(x.data(), xt);
  cpu->moe(xt, w, out);
  return read(*cpu, out);
}

double moe_error(const MoeCase& c, DType dtype, uint32_t seed) {
  std::mt19937 rng(seed);
  HostMoe h(c, dtype, rng);
  auto x = random_values(static_cast<size_t>(c.tokens) * c.hidden, 1.0f, dtype, rng);
  auto gpu = make_cuda_backend(0).value();
  gpu->set_weights_dtype(dtype);
  EXPECT_TRUE(gpu->reserve_forward(moe_limits(c, c.tokens)).ok());
  MoeWeights w = h.bind(*gpu, c);
  Tensor xt = *gpu->alloc(dtype, c.tokens, c.hidden), out = *gpu->alloc(DType::kF32, c.tokens, c.hidden);
  gpu->copy_from_host(x.data(), xt);
  std::vector<float> poison(out.numel(), NAN);
  gpu->copy_from_host(poison.data(), out);  // every element must be written
  gpu->moe(xt, w, out);
  return relative_error(read(*gpu, out), cpu_moe(c, h, x));
}

}  // namespace

TEST(CudaMoe, MatchesCpuOverManyShapes) {
  REQUIRE_GPU();
  const std::vector<MoeCase> cases = {
      {4, 1, 1, 64, 32, false},           // one token, one expert
      {4, 4, 3, 64, 32, true},            // every expert chosen
      {8, 2, 5, 64, 32, true},            // the qwen3_moe golden's shape
      {6, 3, 7, 64, 24, false},           // qwen3_moe_sparse2's
      {16, 4, 33, 128, 64, true},
      {32, 8, 64, 256, 96, true},
      {128, 8, 1, 256, 64, true},         // qwen3-30b-a3b's routing: 128 experts, top-8
      {128, 8, 8, 256, 64, false},
      {128, 8, 64, 256, 64, true},
      {64, 6, 17, 72, 40, true},          // rows not a multiple of 256: lanes past the end
      {8, 2, 9, 60, 20, false},           // nor of 8: element-wise loads
      {12, 3, 20, 64, 32, true, true},    // a third of the experts on another rank
      {16, 8, 160, 64, 32, true},         // 1280 pairs: the grouped cuBLAS path
      {12, 4, 300, 64, 32, false, true},  // grouped, with another rank's experts
  };
  for (size_t i = 0; i < cases.size(); i++) {
    const bool grouped = static_cast<int64_t>(cases[i].tokens) * cases[i].top_k > 1024;
    const double f32 = moe_error(cases[i], DType::kF32, 100 + i);
    const double bf16 = moe_error(cases[i], DType::kBF16, 200 + i);
    EXPECT_LE(f32, 1e-5) << "case " << i;
    EXPECT_LE(bf16, grouped ? 1e-2 : 1e-4) << "case " << i;
  }
}

// A decode step captured once replays on new inputs (its routing differs) without a host round trip, and
// nothing is allocated after the first (eager) call. 1280 pairs: captured, the fused path runs even there.
TEST(CudaMoe, CapturedGraphReplaysOnNewInputsWithoutAllocating) {
  REQUIRE_GPU();
  for (const MoeCase& c : {MoeCase{128, 8, 64, 256, 64, true}, MoeCase{16, 8, 160, 64, 32, false, true}}) {
    std::mt19937 rng(7);
    HostMoe h(c, DType::kBF16, rng);
    auto gpu = make_cuda_backend(0).value();
    gpu->set_weights_dtype(DType::kBF16);
    ASSERT_TRUE(gpu->reserve_forward(moe_limits(c, c.tokens)).ok());
    MoeWeights w = h.bind(*gpu, c);
    Tensor xt = *gpu->alloc(DType::kBF16, c.tokens, c.hidden), out = *gpu->alloc(DType::kF32, c.tokens, c.hidden);
    auto x = random_values(static_cast<size_t>(c.tokens) * c.hidden, 1.0f, DType::kBF16, rng);
    gpu->copy_from_host(x.data(), xt);
    gpu->moe(xt, w, out);  // eager first: the expert table becomes resident
    const uint64_t warm = gpu->allocations();
    gpu->begin_capture();
    gpu->moe(xt, w, out);
    ASSERT_TRUE(gpu->end_capture(1).ok());
    for (int round = 0; round < 3; round++) {
      x = random_values(x.size(), 1.0f, DType::kBF16, rng);
      gpu->copy_from_host(x.data(), xt);
      ASSERT_TRUE(gpu->replay(1));
      EXPECT_LE(relative_error(read(*gpu, out), cpu_moe(c, h, x)), 1e-4) << "round " << round;
    }
    EXPECT_EQ(gpu->allocations(), warm);
  }
}

// Each token's output has the same bits alone as in a batch of 48: greedy decoding does not depend on what
// else the server is running.
TEST(CudaMoe, TokenOutputIsBitwiseTheSameAloneAndBatched) {
  REQUIRE_GPU();
  const MoeCase c{128, 8, 48, 256, 64, true};
  std::mt19937 rng(11);
  HostMoe h(c, DType::kBF16, rng);
  auto gpu = make_cuda_backend(0).value();
  gpu->set_weights_dtype(DType::kBF16);
  ASSERT_TRUE(gpu->reserve_forward(moe_limits(c, c.tokens)).ok());
  MoeWeights w = h.bind(*gpu, c);
  Tensor xt = *gpu->alloc(DType::kBF16, c.tokens, c.hidden), out = *gpu->alloc(DType::kF32, c.tokens, c.hidden);
  Tensor one = *gpu->alloc(DType::kF32, 1, c.hidden);
  gpu->copy_from_host(random_values(static_cast<size_t>(c.tokens) * c.hidden, 1.0f, DType::kBF16, rng).data(), xt);
  gpu->moe(xt, w, out);
  const auto batched = read(*gpu, out);
  for (int t : {0, 5, 17, 47}) {
    gpu->moe(xt.row_slice(t, 1), w, one);
    const auto alone = read(*gpu, one);
    EXPECT_EQ(std::memcmp(alone.data(), batched.data() + static_cast<size_t>(t) * c.hidden,
                          alone.size() * sizeof(float)),
              0)
        << "token " << t;
  }
}

}  // namespace keel::backend
