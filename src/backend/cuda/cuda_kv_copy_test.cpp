// The CUDA backend's KV block copies (the prefix cache's host RAM and SSD tiers) against the CPU backend: the
// copies run on their own stream through a ring of pinned staging slots, so what is checked is that every
// byte round-trips, that a run of uploads longer than the ring keeps each block's own bytes, that an upload is
// seen by whatever the compute stream does next, and that a prefix sent down to host RAM and back through the
// engine gives the tokens it gave before.
#include <gtest/gtest.h>

#include <cstring>
#include <future>
#include <random>

#include "backend/cpu/cpu_backend.h"
#include "backend/cuda/cuda_backend.h"
#include "cache/hot_tier.h"
#include "engine/engine.h"
#include "engine/model_runner.h"
#include "model/model.h"

namespace keel::backend {

namespace {

#define REQUIRE_GPU() \
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device visible"

// F32: the only KV dtype of the CPU backend (the CUDA one keeps KV in its compute dtype).
const KvLayout kLayout{.num_layers = 3, .num_blocks = 40, .block_size = 16, .num_kv_heads = 2, .head_dim = 64,
                       .dtype = DType::kF32};

size_t block_bytes() { return kLayout.bytes_per_block_per_layer() * kLayout.num_layers; }

std::vector<uint8_t> random_block(uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> b(block_bytes());
  for (auto& x : b) x = static_cast<uint8_t>(rng());
  return b;
}

std::unique_ptr<Backend> gpu_with_kv() {
  auto gpu = make_cuda_backend(0).value();
  gpu->set_weights_dtype(DType::kF32);
  EXPECT_TRUE(gpu->alloc_kv(kLayout).ok());
  return gpu;
}

std::unique_ptr<Backend> cpu_with_kv() {
  auto cpu = make_cpu_backend();
  EXPECT_TRUE(cpu->alloc_kv(kLayout).ok());
  return cpu;
}

}  // namespace

TEST(CudaKvCopy, EveryBlockRoundTripsLikeOnTheCpuBackend) {
  REQUIRE_GPU();
  auto gpu = gpu_with_kv();
  auto cpu = cpu_with_kv();
  // Every block of the pool uploaded before any is read back: five times the staging ring.
  for (int b = 0; b < kLayout.num_blocks; b++) {
    const std::vector<uint8_t> bytes = random_block(static_cast<uint32_t>(b));
    gpu->copy_kv_block_from_host(bytes.data(), b);
    cpu->copy_kv_block_from_host(bytes.data(), b);
  }
  std::vector<uint8_t> from_gpu(block_bytes()), from_cpu(block_bytes());
  for (int b = kLayout.num_blocks - 1; b >= 0; b--) {
    gpu->copy_kv_block_to_host(b, from_gpu.data());
    cpu->copy_kv_block_to_host(b, from_cpu.data());
    ASSERT_EQ(from_gpu, random_block(static_cast<uint32_t>(b))) << "block " << b;
    ASSERT_EQ(from_gpu, from_cpu) << "block " << b;
  }
}

TEST(CudaKvCopy, UploadsAndDownloadsInAnyOrderKeepEachBlocksBytes) {
  REQUIRE_GPU();
  auto gpu = gpu_with_kv();
  std::mt19937 rng(7);
  std::vector<uint32_t> seed_of(kLayout.num_blocks, 0);
  for (int b = 0; b < kLayout.num_blocks; b++) gpu->copy_kv_block_from_host(random_block(0).data(), b);
  std::vector<uint8_t> out(block_bytes());
  for (int i = 1; i <= 500; i++) {
    const int b = static_cast<int>(rng() % kLayout.num_blocks);
    if (rng() % 3 != 0) {
      // The source buffer dies at once: the backend must have staged it before returning.
      std::vector<uint8_t> bytes = random_block(static_cast<uint32_t>(i));
      gpu->copy_kv_block_from_host(bytes.data(), b);
      std::memset(bytes.data(), 0xAB, bytes.size());
      seed_of[b] = static_cast<uint32_t>(i);
    } else {
      gpu->copy_kv_block_to_host(b, out.data());
      ASSERT_EQ(out, random_block(seed_of[b])) << "block " << b << " at step " << i;
    }
  }
}

TEST(CudaKvCopy, CopiesBetweenKernelsAreOrderedWithTheComputeStream) {
  REQUIRE_GPU();
  auto gpu = gpu_with_kv();
  // Uploads and downloads between kernels on the compute stream: each is ordered after what was queued
  // before it, and the kernels after it still run on their own data.
  Tensor t = *gpu->alloc(DType::kF32, 256, 256);
  std::vector<float> ones(256 * 256, 1.0f);
  for (int round = 0; round < 20; round++) {
    gpu->copy_from_host(ones.data(), t);
    gpu->add(t, t, t);  // compute queued before the upload
    const std::vector<uint8_t> bytes = random_block(static_cast<uint32_t>(1000 + round));
    gpu->copy_kv_block_from_host(bytes.data(), round % kLayout.num_blocks);
    gpu->add(t, t, t);  // and after it
    gpu->synchronize();
    std::vector<uint8_t> out(block_bytes());
    gpu->copy_kv_block_to_host(round % kLayout.num_blocks, out.data());
    ASSERT_EQ(out, bytes) << "round " << round;
    std::vector<float> back(256 * 256);
    gpu->copy_to_host(t, back.data());
    ASSERT_EQ(back[12345], 4.0f);
  }
}

TEST(CudaKvCopy, APrefixSentDownToHostRamAndBackGivesTheSameGreedyTokens) {
  REQUIRE_GPU();
  auto gpu = make_cuda_backend(0).value();
  model::LoadOptions o;
  o.max_batch_tokens = 64;
  o.kv_blocks = 64;
  o.block_size = 4;
  auto m = model::Model::load(env::Env::posix(), std::string(KEEL_SOURCE_DIR) + "/tests/golden/models/qwen3",
                              gpu.get(), o);
  ASSERT_TRUE(m.ok()) << m.status().message();
  std::vector<int32_t> prompt;
  for (int i = 0; i < 37; i++) prompt.push_back((i * 31 + 5) % 200 + 3);
  auto hot = cache::HotTier::create(64 * engine::kv_block_bytes(**m), engine::kv_block_bytes(**m));
  ASSERT_TRUE(hot.ok());
  engine::EngineOptions eo;
  eo.hot_tier = hot->get();
  engine::Engine engine(m->get(), eo);
  auto run = [&](int* cached) {
    engine::Request r;
    r.prompt = prompt;
    r.max_tokens = 12;
    r.sampling.temperature = 0;
    r.ignore_eos = true;
    std::vector<int32_t> tokens;
    std::promise<void> done;
    EXPECT_TRUE(engine.submit(r, [&](const engine::Event& e) {
      if (e.token >= 0) tokens.push_back(e.token);
      if (e.finish != engine::FinishReason::kNone) {
        *cached = e.cached_tokens;
        done.set_value();
      }
    }).ok());
    done.get_future().wait();
    return tokens;
  };
  int cached = -1;
  const std::vector<int32_t> cold = run(&cached);
  EXPECT_EQ(cached, 0);
  EXPECT_GT(engine.evict_prefix_cache(), 0);
  const std::vector<int32_t> warm = run(&cached);
  EXPECT_EQ(cached, 36);  // 9 full blocks of 4; the last token is computed
  EXPECT_EQ(engine.stats().hot_cache_hit_blocks, 9u);
  EXPECT_EQ(warm, cold);
}

}  // namespace keel::backend
