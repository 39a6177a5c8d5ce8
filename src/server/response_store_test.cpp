#include "server/response_store.h"

#include <gtest/gtest.h>

namespace keel::server {
namespace {

StoredResponse sized(size_t text_bytes) {
  return StoredResponse{nlohmann::ordered_json{{"text", std::string(text_bytes, 'x')}}, nlohmann::ordered_json::array()};
}

TEST(ResponseStore, KeepsAtMostMaxEntriesDroppingTheLeastRecentlyUsed) {
  ResponseStore store(2, 1 << 20);
  store.put("a", sized(1));
  store.put("b", sized(1));
  ASSERT_TRUE(store.get("a"));  // a is now more recent than b
  store.put("c", sized(1));
  EXPECT_EQ(store.size(), 2u);
  EXPECT_TRUE(store.get("a"));
  EXPECT_FALSE(store.get("b"));
  EXPECT_TRUE(store.get("c"));
}

TEST(ResponseStore, KeepsAtMostMaxBytesAndNeverOneLargerThanThat) {
  ResponseStore store(100, 1000);
  store.put("a", sized(400));
  store.put("b", sized(400));
  EXPECT_EQ(store.size(), 2u);
  store.put("c", sized(400));  // three would be over 1000 bytes: a goes
  EXPECT_EQ(store.size(), 2u);
  EXPECT_LE(store.bytes(), 1000u);
  EXPECT_FALSE(store.get("a"));
  store.put("huge", sized(2000));
  EXPECT_FALSE(store.get("huge"));
  EXPECT_EQ(store.size(), 2u);
}

TEST(ResponseStore, EraseAndReplaceKeepTheByteCountExact) {
  ResponseStore store(10, 1 << 20);
  store.put("a", sized(100));
  const size_t one = store.bytes();
  store.put("a", sized(100));
  EXPECT_EQ(store.bytes(), one);
  EXPECT_TRUE(store.erase("a"));
  EXPECT_FALSE(store.erase("a"));
  EXPECT_EQ(store.bytes(), 0u);
  EXPECT_EQ(store.size(), 0u);
}

}  // namespace
}  // namespace keel::server
