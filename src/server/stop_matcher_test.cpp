#include "server/stop_matcher.h"

#include <gtest/gtest.h>

namespace keel::server {
namespace {

TEST(StopMatcher, WithoutStopsPassesTextThrough) {
  StopMatcher m({});
  EXPECT_EQ(m.feed("abc").text, "abc");
  EXPECT_EQ(m.flush(), "");
}

TEST(StopMatcher, HoldsBackAPossibleStopPrefixAndReleasesItWhenItDiverges) {
  StopMatcher m({"END"});
  EXPECT_EQ(m.feed("hello E").text, "hello ");
  EXPECT_EQ(m.feed("N").text, "");
  auto out = m.feed("x");
  EXPECT_EQ(out.text, "ENx");
  EXPECT_FALSE(out.matched);
}

TEST(StopMatcher, CutsTheTextBeforeAMatchSplitOverPieces) {
  StopMatcher m({"END"});
  EXPECT_EQ(m.feed("abc E").text, "abc ");
  auto out = m.feed("NDxyz");
  EXPECT_TRUE(out.matched);
  EXPECT_EQ(out.stop, "END");
  EXPECT_EQ(out.text, "");
  EXPECT_EQ(m.feed("more").text, "");
  EXPECT_EQ(m.flush(), "");
}

TEST(StopMatcher, EarliestMatchWinsAmongSeveralStops) {
  StopMatcher m({"world", "lo"});
  auto out = m.feed("hello world");
  EXPECT_TRUE(out.matched);
  EXPECT_EQ(out.stop, "lo");
  EXPECT_EQ(out.text, "hel");
}

TEST(StopMatcher, FlushReleasesAHeldPrefixAtTheEnd) {
  StopMatcher m({"\n\n"});
  EXPECT_EQ(m.feed("line\n").text, "line");
  EXPECT_EQ(m.flush(), "\n");
}

TEST(StopMatcher, MultiByteStopStringsMatchAcrossPieces) {
  StopMatcher m({"世界"});
  EXPECT_EQ(m.feed("hi \xE4\xB8").text, "hi ");
  auto out = m.feed("\x96\xE7\x95\x8C!");
  EXPECT_TRUE(out.matched);
  EXPECT_EQ(out.text, "");
}

TEST(StopMatcher, EmptyStopStringsAreIgnored) {
  StopMatcher m({""});
  EXPECT_EQ(m.feed("abc").text, "abc");
}

}  // namespace
}  // namespace keel::server
