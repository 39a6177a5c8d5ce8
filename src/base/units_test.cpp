#include "base/units.h"

#include <gtest/gtest.h>

namespace keel {

TEST(Units, ParsesPlainAndSuffixedSizes) {
  EXPECT_EQ(*parse_bytes("123"), 123u);
  EXPECT_EQ(*parse_bytes("8GB"), 8ull << 30);
  EXPECT_EQ(*parse_bytes("512MiB"), 512ull << 20);
  EXPECT_EQ(*parse_bytes("1.5k"), 1536u);
}

TEST(Units, RejectsUnknownUnitNamingIt) {
  auto r = parse_bytes("8QB");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("'qb'"), std::string::npos);
}

TEST(Units, PercentOfTotal) {
  EXPECT_EQ(*parse_bytes_or_percent("50%", 1000), 500u);
  EXPECT_FALSE(parse_bytes_or_percent("150%", 1000).ok());
}

TEST(Units, FormatsBytes) {
  EXPECT_EQ(format_bytes(12), "12 B");
  EXPECT_EQ(format_bytes(1536), "1.5 KiB");
}

}  // namespace keel
