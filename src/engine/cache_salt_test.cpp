// cache_salt (vLLM's per-request field) isolates tenants' prefixes: it is mixed into the first block's key, so a
// prompt cached under one salt is found again only under that salt, and usage's cached_tokens cannot tell one
// tenant whether another sent the same prefix.
#include <gtest/gtest.h>

#include "engine/engine.h"
#include "engine/engine_test_util.h"

namespace keel::engine {
namespace {

using namespace keel::engine::testing;

Collector run_salted(Engine& engine, const std::vector<int32_t>& p, const std::string& salt) {
  Collector c;
  Request r = greedy(p, 4);
  r.cache_salt = salt;
  EXPECT_TRUE(engine.submit(std::move(r), c.callback()).ok());
  EXPECT_TRUE(c.wait());
  return c;
}

TEST(CacheSalt, TwoSaltsDoNotShareCachedTokens) {
  Loaded l = load(64);
  Engine engine(l.model.get(), EngineOptions{});
  const std::vector<int32_t> p = prompt(21, 3);  // 5 full blocks of 4; the last token is always computed
  const Collector a = run_salted(engine, p, "tenant-a");
  EXPECT_EQ(a.cached_tokens, 0);
  EXPECT_EQ(run_salted(engine, p, "tenant-b").cached_tokens, 0);
  EXPECT_EQ(run_salted(engine, p, "").cached_tokens, 0);
  const Collector again = run_salted(engine, p, "tenant-a");
  EXPECT_EQ(again.cached_tokens, 20);
  EXPECT_EQ(again.tokens, a.tokens);  // the salt changes the key, never the computation
  EXPECT_EQ(run_salted(engine, p, "tenant-b").cached_tokens, 20);
  EXPECT_EQ(run_salted(engine, p, "").cached_tokens, 20);
}

}  // namespace
}  // namespace keel::engine
