// The SSD tier under the engine on a golden model: a prefix pushed out of the device and host RAM is read back
// from disk with the same greedy tokens, survives a restart of the whole engine, never matches other weights,
// and a disk that fills up never fails a request.
#include <gtest/gtest.h>

#include <chrono>
#include <future>

#include "cache/hot_tier.h"
#include "cache/ssd_test_util.h"
#include "cache/ssd_tier.h"
#include "engine/engine.h"
#include "engine/engine_test_util.h"
#include "engine/fingerprint.h"
#include "engine/model_runner.h"
#include "env/fault_env.h"

namespace keel::engine {

namespace {

using namespace keel::engine::testing;

const std::string kOtherModel = std::string(KEEL_SOURCE_DIR) + "/tests/golden/models/qwen3";

// Every request here asks for fewer tokens than the context allows, so it must end by length.
Collector run_to_length(Engine& engine, const std::vector<int32_t>& p, int max_tokens) {
  Collector c = run_one(engine, p, max_tokens);
  EXPECT_EQ(c.finish, FinishReason::kLength);
  return c;
}

cache::ModelFingerprint fingerprint_of(const Loaded& l, const std::string& dir = kModel) {
  auto fp = weights_fingerprint(env::Env::posix(), dir, *l.model);
  EXPECT_TRUE(fp.ok()) << fp.status().message();
  return *fp;
}

std::unique_ptr<cache::SsdTier> open_ssd(env::Env* env, const std::string& dir, const Loaded& l,
                                         const cache::ModelFingerprint& fp) {
  cache::SsdTierOptions o;
  o.dir = dir;
  o.max_bytes = 64ull << 20;
  o.segment_bytes = 1ull << 20;
  o.max_payload_bytes = kv_block_bytes(*l.model);
  o.fingerprint = fp;
  o.layout = cache_kv_layout(l.model->kv_layout());
  auto t = cache::SsdTier::open(env, o);
  EXPECT_TRUE(t.ok()) << t.status().message();
  return t.ok() ? std::move(*t) : nullptr;
}

// 8 device blocks of 4 tokens: `other` (24 tokens + 6 generated) pushes all of `first`'s blocks out.
const std::vector<int32_t> kFirst = prompt(21, 11);
const std::vector<int32_t> kOther = prompt(24, 12);

// Runs `first` then `other` so that first's 5 full blocks leave the device (and a one-block host tier) and
// are written to the SSD.
Collector fill(Engine& engine, cache::SsdTier& ssd) {
  Collector a = run_to_length(engine, kFirst, 4);
  (void)run_to_length(engine, kOther, 6);
  ssd.flush();
  return a;
}

}  // namespace

TEST(EngineSsdCache, APrefixEvictedFromDeviceAndHostIsServedFromTheSsd) {
  const std::string dir = cache::testing::temp_dir();
  Loaded l = load(/*kv_blocks=*/8);
  auto hot = cache::HotTier::create(1 * kv_block_bytes(*l.model), kv_block_bytes(*l.model));
  ASSERT_TRUE(hot.ok());
  auto ssd = open_ssd(env::Env::posix(), dir, l, fingerprint_of(l));
  ASSERT_NE(ssd, nullptr);
  EngineOptions o;
  o.fingerprint = fingerprint_of(l);
  o.hot_tier = hot->get();
  o.ssd_tier = ssd.get();
  Engine engine(l.model.get(), o);
  Collector a = fill(engine, *ssd);
  EXPECT_GE(ssd->stats().written, 4u);
  Collector c = run_to_length(engine, kFirst, 4);
  EXPECT_EQ(c.cached_tokens, 20);
  EXPECT_EQ(c.tokens, a.tokens);
  EXPECT_EQ(c.tokens, alone(kFirst, 4));
  EngineStats st = engine.stats();
  EXPECT_GE(st.ssd_cache_hit_blocks, 4u);
  EXPECT_GT(st.ssd_cache_written, 0u);
  EXPECT_EQ(st.ssd_cache_corrupt, 0u);
  EXPECT_EQ(st.kv_blocks_used, 0);
}

TEST(EngineSsdCache, WithoutAHostTierTheDeviceEvictsStraightToTheSsd) {
  const std::string dir = cache::testing::temp_dir();
  Loaded l = load(/*kv_blocks=*/8);
  auto ssd = open_ssd(env::Env::posix(), dir, l, fingerprint_of(l));
  ASSERT_NE(ssd, nullptr);
  EngineOptions o;
  o.fingerprint = fingerprint_of(l);
  o.ssd_tier = ssd.get();
  Engine engine(l.model.get(), o);
  Collector a = fill(engine, *ssd);
  Collector c = run_to_length(engine, kFirst, 4);
  EXPECT_EQ(c.cached_tokens, 20);
  EXPECT_EQ(c.tokens, a.tokens);
  EXPECT_EQ(engine.stats().ssd_cache_hit_blocks, 5u);
}

TEST(EngineSsdCache, EvictPrefixCacheSendsUnusedDeviceBlocksToTheSsdAndTheyComeBack) {
  const std::string dir = cache::testing::temp_dir();
  Loaded l = load(/*kv_blocks=*/16);
  auto ssd = open_ssd(env::Env::posix(), dir, l, fingerprint_of(l));
  ASSERT_NE(ssd, nullptr);
  EngineOptions o;
  o.fingerprint = fingerprint_of(l);
  o.ssd_tier = ssd.get();
  Engine engine(l.model.get(), o);
  Collector a = run_to_length(engine, kFirst, 4);
  EXPECT_EQ(engine.stats().kv_blocks_cached, 6);  // 21 prompt + 3 fed back tokens: 6 full blocks
  EXPECT_EQ(engine.evict_prefix_cache(), 6);
  EXPECT_EQ(engine.stats().kv_blocks_cached, 0);
  ssd->flush();
  Collector c = run_to_length(engine, kFirst, 4);
  EXPECT_EQ(c.cached_tokens, 20);
  EXPECT_EQ(c.tokens, a.tokens);
  EXPECT_EQ(engine.stats().ssd_cache_hit_blocks, 5u);
}

TEST(EngineSsdCache, AZeroFingerprintLeavesTheSsdOut) {
  const std::string dir = cache::testing::temp_dir();
  Loaded l = load(/*kv_blocks=*/8);
  auto ssd = open_ssd(env::Env::posix(), dir, l, fingerprint_of(l));
  ASSERT_NE(ssd, nullptr);
  EngineOptions o;  // config_fingerprint only: two checkpoints of one shape would share blocks on disk
  o.ssd_tier = ssd.get();
  Engine engine(l.model.get(), o);
  (void)fill(engine, *ssd);
  EXPECT_EQ(ssd->stats().puts, 0u);
}

TEST(EngineSsdCache, APrefixSurvivesARestartOfTheWholeEngineButNeverMatchesOtherWeights) {
  const std::string dir = cache::testing::temp_dir();
  std::vector<int32_t> first_tokens;
  {
    Loaded l = load(/*kv_blocks=*/8);
    auto ssd = open_ssd(env::Env::posix(), dir, l, fingerprint_of(l));
    ASSERT_NE(ssd, nullptr);
    EngineOptions o;
    o.fingerprint = fingerprint_of(l);
    o.ssd_tier = ssd.get();
    auto engine = std::make_unique<Engine>(l.model.get(), o);
    first_tokens = fill(*engine, *ssd).tokens;
    engine.reset();
    ssd.reset();  // clean shutdown: the index checkpoint is written
  }
  {
    // A new model, engine and tier on the same directory: served from disk, same tokens.
    Loaded l = load(/*kv_blocks=*/8);
    auto ssd = open_ssd(env::Env::posix(), dir, l, fingerprint_of(l));
    ASSERT_NE(ssd, nullptr);
    EXPECT_GE(ssd->stats().blocks, 5u);
    EXPECT_GT(ssd->stats().segments_from_checkpoint, 0u);
    EngineOptions o;
    o.fingerprint = fingerprint_of(l);
    o.ssd_tier = ssd.get();
    Engine engine(l.model.get(), o);
    Collector c = run_to_length(engine, kFirst, 4);
    EXPECT_EQ(c.cached_tokens, 20);
    EXPECT_EQ(c.tokens, first_tokens);
    EXPECT_EQ(engine.stats().ssd_cache_hit_blocks, 5u);
  }
  {
    // The same shapes named by other weights' identity: nothing on disk is theirs.
    Loaded l = load(/*kv_blocks=*/8);
    const cache::ModelFingerprint other = fingerprint_of(l, kOtherModel);
    ASSERT_NE(other, fingerprint_of(l));
    auto ssd = open_ssd(env::Env::posix(), dir, l, other);
    ASSERT_NE(ssd, nullptr);
    EXPECT_EQ(ssd->stats().blocks, 0u);
    EXPECT_GT(ssd->stats().skipped_other_model, 0u);
    EngineOptions o;
    o.fingerprint = other;
    o.ssd_tier = ssd.get();
    Engine engine(l.model.get(), o);
    Collector c = run_to_length(engine, kFirst, 4);
    EXPECT_EQ(c.cached_tokens, 0);
    EXPECT_EQ(c.tokens, first_tokens);
    EXPECT_EQ(engine.stats().ssd_cache_hit_blocks, 0u);
  }
}

TEST(EngineSsdCache, ADiskThatFillsUpMidWriteFailsNoRequest) {
  const std::string dir = cache::testing::temp_dir();
  env::FaultEnv fault(env::Env::posix());
  Loaded l = load(/*kv_blocks=*/8);
  // Room for about two blocks: the third record's append is cut short by ENOSPC.
  fault.fail_after_bytes(2 * kv_block_bytes(*l.model) + 300);
  auto ssd = open_ssd(&fault, dir, l, fingerprint_of(l));
  ASSERT_NE(ssd, nullptr);
  EngineOptions o;
  o.fingerprint = fingerprint_of(l);
  o.ssd_tier = ssd.get();
  Engine engine(l.model.get(), o);
  const std::vector<int32_t> expected = alone(kFirst, 4);
  for (int round = 0; round < 3; round++) {
    Collector a = run_to_length(engine, kFirst, 4);
    EXPECT_EQ(a.tokens, expected) << "round " << round;
    Collector b = run_to_length(engine, kOther, 6);
    ssd->flush();
  }
  EXPECT_GT(ssd->stats().disk_full_events, 0u);
  EXPECT_EQ(engine.stats().ssd_cache_corrupt, 0u);
}

}  // namespace keel::engine
