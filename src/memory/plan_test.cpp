#include "memory/plan.h"

#include <gtest/gtest.h>

#include <sstream>

namespace keel::memory {
namespace {

constexpr uint64_t MiB = 1ull << 20;
constexpr uint64_t GiB = 1ull << 30;

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// A toy shape whose numbers are easy by hand: 512 B of KV per token (2 x 2 layers x 2 kv heads x 16 x f32),
// 8 KiB per 16-token block, and exactly 1 MiB of activations for 256 batched tokens and 4 logit rows (one per
// sequence): 4072 B per token (4 x 64 hidden + 2 x 64 q + 2 x 32 kv + 3 x 190 intermediate = 1018 floats) and
// 1536 B per logit row (320 vocab + 64 hidden = 384 floats).
PlanInputs toy(const std::string& budget) {
  PlanInputs in;
  in.model = "toy";
  in.weight_bytes = 10 * MiB;
  in.shape = {.num_layers = 2, .num_heads = 4, .num_kv_heads = 2, .head_dim = 16, .hidden_size = 64,
              .intermediate_size = 190, .vocab_size = 320};
  in.max_model_len = 2048;  // 128 blocks = 1 MiB of KV per sequence
  in.max_num_seqs = 4;      // 512 blocks = 4 MiB wanted
  in.max_num_batched_tokens = 256;  // with the 4 logit rows, 1 MiB of activations
  in.block_size = 16;
  in.max_process_memory = budget;
  in.overhead_bytes = 1 * MiB;
  return in;
}

MemoryReport host(uint64_t total = 100 * MiB, uint64_t free = 0) { return {"host", total, free}; }

TEST(Plan, LinesFollowTheShape) {
  EXPECT_EQ(toy("1GB").shape.kv_bytes_per_token(), 512u);
  EXPECT_EQ(activation_bytes(toy("1GB").shape, 1, 0), 4072u);
  EXPECT_EQ(activation_bytes(toy("1GB").shape, 0, 1), 1536u);
  ModelShape half = toy("1GB").shape;
  half.activation_dtype_bytes = 2;  // h, attention output, activated MLP: 64 + 64 + 190 = 318; logit_in: 64
  EXPECT_EQ(activation_bytes(half, 1, 0), 4072u - 318 * 2);
  EXPECT_EQ(activation_bytes(half, 0, 1), 1536u - 64 * 2);
  auto plan = make_plan(toy("16MB"), host(), std::nullopt);
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  EXPECT_EQ(plan->weight_bytes, 10 * MiB);
  EXPECT_EQ(plan->activation_bytes, 1 * MiB);
  EXPECT_EQ(plan->kv_bytes_per_block, 8192u);
  EXPECT_EQ(plan->overhead_bytes, 1 * MiB);
  EXPECT_EQ(plan->hot_tier_bytes, 0u);
}

TEST(Plan, KvPoolIsCappedAtWhatMaxNumSeqsNeeds) {
  auto plan = make_plan(toy("1GB"), host(2 * GiB), std::nullopt);
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  EXPECT_EQ(plan->kv_blocks, 512);  // 4 sequences x 128 blocks, though far more would fit
  EXPECT_EQ(plan->kv_bytes, 4 * MiB);
  EXPECT_EQ(plan->kv_capacity_tokens(), 4 * 2048);
}

TEST(Plan, KvPoolTakesExactlyWhatIsLeft) {
  // 14 MiB - 10 weights - 1 activations - 1 overhead = 2 MiB = 256 blocks of 8 KiB.
  auto plan = make_plan(toy("14MB"), host(), std::nullopt);
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  EXPECT_EQ(plan->kv_blocks, 256);
  EXPECT_EQ(plan->main_total(), 14 * MiB);
  // One byte short of a block rounds down.
  auto tight = make_plan(toy(std::to_string(14 * MiB - 1)), host(), std::nullopt);
  ASSERT_TRUE(tight.ok());
  EXPECT_EQ(tight->kv_blocks, 255);
}

TEST(Plan, KvBlocksPerSequenceRoundUp) {
  PlanInputs in = toy("1GB");
  in.max_model_len = 2050;  // 128 full blocks + 2 tokens = 129 blocks
  in.max_num_seqs = 1;
  auto plan = make_plan(in, host(2 * GiB), std::nullopt);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->kv_blocks, 129);
}

TEST(Plan, ExactlyOneSequenceFits) {
  auto plan = make_plan(toy("13MB"), host(), std::nullopt);
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  EXPECT_EQ(plan->kv_blocks, 128);
  EXPECT_EQ(plan->kv_capacity_tokens(), plan->max_model_len);  // one 2048-token request: the whole pool
}

TEST(Plan, RefusesWhenOneSequenceDoesNotFitWithEveryNumber) {
  auto plan = make_plan(toy("12.5MB"), host(), std::nullopt);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), Code::kResourceExhausted);
  EXPECT_EQ(plan.status().message(),
            "memory plan: weights 10.0 MiB + activations 1.0 MiB + overhead 1.0 MiB + KV for one 2048-token sequence "
            "1.0 MiB = 13.0 MiB exceed the budget of 12.5 MiB (--max-process-memory 12.5MB); lower --max-model-len "
            "or --max-num-batched-tokens or raise --max-process-memory");
}

TEST(Plan, RefusalForALargeModelReadsInGiB) {
  PlanInputs in;
  in.model = "llama-8b";
  in.weight_bytes = 15 * GiB;
  // 2 x 32 layers x 8 kv heads x 128 x bf16 = 128 KiB per token: 4 GiB for 32768 tokens.
  in.shape = {.num_layers = 32, .num_heads = 32, .num_kv_heads = 8, .head_dim = 128, .hidden_size = 4096,
              .intermediate_size = 14336, .vocab_size = 128256, .kv_dtype_bytes = 2};
  in.max_model_len = 32768;
  in.max_num_seqs = 8;
  in.max_num_batched_tokens = 2048;
  in.max_process_memory = "16GB";
  auto plan = make_plan(in, host(64 * GiB), std::nullopt);
  ASSERT_FALSE(plan.ok());
  const std::string& m = plan.status().message();
  // Activations: 2048 tokens x 272 KiB + 8 logit rows x 517 KiB = 548.0 MiB.
  EXPECT_TRUE(contains(m, "memory plan: weights 15.0 GiB + activations 548.0 MiB + overhead 512.0 MiB + KV for one "
                          "32768-token sequence 4.0 GiB = 20.0 GiB exceed the budget of 16.0 GiB "
                          "(--max-process-memory 16GB); lower --max-model-len"))
      << m;
}

TEST(Plan, WeightsAloneTooLargeSaysSo) {
  PlanInputs in = toy("8MB");
  auto plan = make_plan(in, host(), std::nullopt);
  ASSERT_FALSE(plan.ok());
  EXPECT_TRUE(contains(plan.status().message(), "the weights alone do not fit; use a smaller model or raise "
                                                "--max-process-memory"))
      << plan.status().message();
}

TEST(Plan, PercentBudgetIsOfTotalHostMemory) {
  // 13% of 100 MiB = 13 MiB: exactly one sequence.
  auto plan = make_plan(toy("13%"), host(100 * MiB), std::nullopt);
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  EXPECT_EQ(plan->main_budget, 13 * MiB);
  EXPECT_EQ(plan->main_budget_source, "--max-process-memory 13% of 100.0 MiB");
  EXPECT_EQ(plan->kv_blocks, 128);
  // The same flag on a machine with twice the memory takes every block it wants.
  auto bigger = make_plan(toy("13%"), host(200 * MiB), std::nullopt);
  ASSERT_TRUE(bigger.ok());
  EXPECT_EQ(bigger->kv_blocks, 512);
}

TEST(Plan, BytesBudgetIgnoresTotalHostMemory) {
  auto plan = make_plan(toy("14MB"), host(1000 * GiB), std::nullopt);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->main_budget, 14 * MiB);
  EXPECT_EQ(plan->main_budget_source, "--max-process-memory 14MB");
}

TEST(Plan, BudgetIsCappedByFreeMemory) {
  auto plan = make_plan(toy("80%"), host(100 * MiB, /*free=*/12 * MiB), std::nullopt);
  ASSERT_FALSE(plan.ok());
  EXPECT_TRUE(contains(plan.status().message(),
                       "exceed the budget of 12.0 MiB (free on host; --max-process-memory 80% of 100.0 MiB asks for "
                       "80.0 MiB)"))
      << plan.status().message();
}

TEST(Plan, BadFlagsAreInvalidArguments) {
  PlanInputs in = toy("16MB");
  in.max_model_len = 0;
  auto a = make_plan(in, host(), std::nullopt);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(a.status().message(), "memory plan: --max-model-len=0 must be positive");

  auto b = make_plan(toy("lots"), host(), std::nullopt);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(b.status().message().starts_with("--max-process-memory: size 'lots'")) << b.status().message();

  auto c = make_plan(toy("120%"), host(), std::nullopt);
  EXPECT_EQ(c.status().code(), Code::kInvalidArgument);

  PlanInputs d = toy("16MB");
  d.gpu_memory_utilization = 1.5;
  auto r = make_plan(d, host(), MemoryReport{"cuda:0", 80 * GiB, 79 * GiB});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "--gpu-memory-utilization 1.5: must be in (0, 1]");
}

TEST(Plan, OnADeviceTheGpuBudgetHoldsTheModelAndTheHostHoldsTheHotTier) {
  PlanInputs in = toy("80%");
  in.gpu_memory_utilization = 0.7;  // 0.7 x 20 MiB = 14 MiB: 256 blocks, as in KvPoolTakesExactlyWhatIsLeft
  in.hot_cache_max_size = 50 * MiB;
  auto plan = make_plan(in, host(100 * MiB), MemoryReport{"cuda:0", 20 * MiB, 20 * MiB});
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  EXPECT_EQ(plan->kv_blocks, 256);
  EXPECT_EQ(plan->main_total(), 14 * MiB);
  EXPECT_EQ(plan->host_total(), 50 * MiB);
  EXPECT_EQ(plan->host_budget, 80 * MiB);

  in.hot_cache_max_size = 90 * MiB;
  auto refused = make_plan(in, host(100 * MiB), MemoryReport{"cuda:0", 20 * MiB, 20 * MiB});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().message(),
            "memory plan: hot tier 90.0 MiB exceeds the host budget of 80.0 MiB (--max-process-memory 80% of "
            "100.0 MiB); lower --hot-cache-max-size or raise --max-process-memory");
}

TEST(Plan, WithoutADeviceTheHotTierSharesTheBudget) {
  PlanInputs in = toy("16MB");
  in.hot_cache_max_size = 2 * MiB;  // 16 - 12 - 2 = 2 MiB of KV
  auto plan = make_plan(in, host(), std::nullopt);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->kv_blocks, 256);
  in.hot_cache_max_size = 4 * MiB;  // no room left for one sequence
  auto refused = make_plan(in, host(), std::nullopt);
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(contains(refused.status().message(), "+ hot tier 4.0 MiB +")) << refused.status().message();
  EXPECT_TRUE(contains(refused.status().message(), "or --hot-cache-max-size")) << refused.status().message();
}

TEST(Plan, TheSsdWriteQueueIsHostMemoryInTheTableAndTheBudget) {
  // 64 queued blocks + 1 staging block of 8 KiB = 520 KiB.
  PlanInputs in = toy("16MB");
  in.ssd_queue_blocks = 64;
  auto plan = make_plan(in, host(), std::nullopt);
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  EXPECT_EQ(plan->ssd_queue_bytes, 65u * 8192);
  // Without a device it shares the budget: 16 - 12 MiB - 520 KiB leaves 3.49 MiB of KV = 447 blocks.
  EXPECT_EQ(plan->kv_blocks, 447);
  EXPECT_TRUE(contains(plan->to_table(), "  ssd queue    host     520.0 KiB  64 blocks waiting for the SSD writer + 1 "
                                         "staging block, 8.0 KiB/block (--ssd-cache-dir)\n"))
      << plan->to_table();
  EXPECT_EQ(plan->main_total(), 10 * MiB + 1 * MiB + 447 * 8192 + 65 * 8192 + 1 * MiB);

  // It is a term of the refusal when one sequence no longer fits beside it.
  in.max_process_memory = "13MB";  // 13 - 12 MiB - 520 KiB < 1 MiB for one 2048-token sequence
  auto refused = make_plan(in, host(), std::nullopt);
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(contains(refused.status().message(), "+ SSD write queue 520.0 KiB +")) << refused.status().message();

  // On a device it lives in host RAM with the hot tier, and both must fit the host budget.
  PlanInputs d = toy("80%");
  d.gpu_memory_utilization = 0.7;
  d.ssd_queue_blocks = 64;
  d.hot_cache_max_size = 80 * MiB - 256 * 1024;  // fits alone
  auto gpu = make_plan(d, host(100 * MiB), MemoryReport{"cuda:0", 20 * MiB, 20 * MiB});
  ASSERT_FALSE(gpu.ok());
  EXPECT_EQ(gpu.status().message(),
            "memory plan: hot tier 79.8 MiB + SSD write queue 520.0 KiB = 80.3 MiB exceed the host budget of 80.0 MiB "
            "(--max-process-memory 80% of 100.0 MiB); lower --hot-cache-max-size or raise --max-process-memory");
  d.hot_cache_max_size = 50 * MiB;
  gpu = make_plan(d, host(100 * MiB), MemoryReport{"cuda:0", 20 * MiB, 20 * MiB});
  ASSERT_TRUE(gpu.ok()) << gpu.status().message();
  EXPECT_EQ(gpu->kv_blocks, 256);  // the device is untouched
  EXPECT_EQ(gpu->host_total(), 50 * MiB + 65 * 8192);
}

TEST(Plan, TheHttpLayerIsHostMemoryInTheTableAndTheBudget) {
  PlanInputs in = toy("16MB");
  in.http_bytes = 2 * MiB;
  in.http_detail = "2112 connections x 64.0 KiB + bodies";
  auto plan = make_plan(in, host(), std::nullopt);
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  const PlanInputs without = toy("16MB");
  auto base = make_plan(without, host(), std::nullopt);
  ASSERT_TRUE(base.ok());
  // Without a device it comes out of the KV pool's share.
  EXPECT_EQ(plan->kv_blocks, base->kv_blocks - static_cast<int>(2 * MiB / plan->kv_bytes_per_block));
  EXPECT_TRUE(contains(plan->to_table(), "http")) << plan->to_table();
  EXPECT_TRUE(contains(plan->to_table(), "2112 connections")) << plan->to_table();

  // On a device it must fit the host budget with the hot tier.
  PlanInputs d = toy("80%");
  d.gpu_memory_utilization = 0.7;
  d.hot_cache_max_size = 70 * MiB;
  d.http_bytes = 20 * MiB;
  auto gpu = make_plan(d, host(100 * MiB), MemoryReport{"cuda:0", 20 * MiB, 20 * MiB});
  ASSERT_FALSE(gpu.ok());
  EXPECT_EQ(gpu.status().message(),
            "memory plan: hot tier 70.0 MiB + http 20.0 MiB = 90.0 MiB exceed the host budget of 80.0 MiB "
            "(--max-process-memory 80% of 100.0 MiB); lower --hot-cache-max-size or raise --max-process-memory");
}

TEST(Plan, ANegativeSsdQueueIsInvalid) {
  PlanInputs in = toy("16MB");
  in.ssd_queue_blocks = -1;
  auto r = make_plan(in, host(), std::nullopt);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "memory plan: ssd_queue_blocks=-1 must not be negative");
}

TEST(Plan, TableIsAligned) {
  PlanInputs in = toy("80%");
  in.gpu_memory_utilization = 0.7;
  in.hot_cache_max_size = 50 * MiB;
  auto plan = make_plan(in, host(100 * MiB), MemoryReport{"cuda:0", 20 * MiB, 20 * MiB});
  ASSERT_TRUE(plan.ok());
  std::string table = plan->to_table();
  EXPECT_EQ(table,
            "memory plan for toy\n"
            "  line         memory       bytes  detail\n"
            "  weights      cuda:0    10.0 MiB\n"
            "  activations  cuda:0     1.0 MiB  256 batched tokens x 4.0 KiB + 4 logit rows x 1.5 KiB (f32)\n"
            "  kv pool      cuda:0     2.0 MiB  256 blocks x 16 tokens = 4096 tokens, 8.0 KiB/block; 256 of 512 wanted "
            "(--max-num-seqs 4 x 2048)\n"
            "  hot tier     host      50.0 MiB  --hot-cache-max-size\n"
            "  overhead     cuda:0     1.0 MiB  CUDA context, workspaces, runtime\n"
            "  total        cuda:0    14.0 MiB  of budget 14.0 MiB (--gpu-memory-utilization 0.7 of 20.0 MiB)\n"
            "  total        host      50.0 MiB  of budget 80.0 MiB (--max-process-memory 80% of 100.0 MiB)\n")
      << table;
}

}  // namespace
}  // namespace keel::memory
