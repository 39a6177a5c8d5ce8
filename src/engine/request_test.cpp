// keel's one context check, as admission runs it (Engine::submit) and every caller reports it.
#include "engine/request.h"

#include <gtest/gtest.h>

namespace keel::engine {
namespace {

TEST(ContextCheck, PromptPlusMaxTokensAboveMaxModelLenIsRefusedWithTheNumbers) {
  EXPECT_TRUE(check_context(2000, 48, 2048, 4096).ok());
  Status s = check_context(2000, 100, 2048, 4096);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "This model's maximum context length is 2048 tokens. However, you requested 2100 tokens (2000 in the "
            "prompt, 100 for the completion). Please reduce the length of the prompt or max_tokens.");
}

TEST(ContextCheck, MoreThanTheKvPoolCanEverHoldIsRefused) {
  Status s = check_context(3000, 10, 4096, 2048);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "The KV cache holds at most 2048 tokens, but this request needs 3010 (3000 in the prompt, 10 for the "
            "completion).");
  EXPECT_TRUE(check_context(2000, 48, 4096, 2048).ok());
}

}  // namespace
}  // namespace keel::engine
