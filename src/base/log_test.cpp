#include "base/log.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sstream>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

namespace keel::log {
namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Each test configures the process's logger onto its own stream; the next test's configure replaces it.
class Log : public ::testing::Test {
 protected:
  void TearDown() override { configure(Level::kInfo, Format::kText); }
  std::ostringstream out_;
};

TEST_F(Log, JsonLinesParseAndCarryTimestampLevelMessageAndFields) {
  configure(Level::kInfo, Format::kJson, &out_);
  info("SSD cache rebuilt", {{"blocks", 1200}, {"dir", "/var/cache/keel"}, {"from_checkpoint", true}, {"ms", 2.5}});
  warn("a \"quoted\"\nmessage");
  const std::vector<std::string> lines = lines_of(out_.str());
  ASSERT_EQ(lines.size(), 2u) << out_.str();
  const nlohmann::json first = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(first["level"], "info");
  EXPECT_EQ(first["msg"], "SSD cache rebuilt");
  EXPECT_EQ(first["blocks"], 1200);
  EXPECT_EQ(first["dir"], "/var/cache/keel");
  EXPECT_EQ(first["from_checkpoint"], true);
  EXPECT_EQ(first["ms"], 2.5);
  const std::string ts = first["ts"];
  EXPECT_EQ(ts.size(), std::string("2026-12-07T16:02:11.204Z").size()) << ts;
  EXPECT_EQ(ts.back(), 'Z') << ts;
  const nlohmann::json second = nlohmann::json::parse(lines[1]);
  EXPECT_EQ(second["level"], "warn");
  EXPECT_EQ(second["msg"], "a \"quoted\"\nmessage");
}

TEST_F(Log, JsonKeepsTsLevelAndMsgWhenAFieldHasTheirName) {
  configure(Level::kInfo, Format::kJson, &out_);
  info("mine", {{"msg", "theirs"}});
  const nlohmann::json line = nlohmann::json::parse(lines_of(out_.str()).at(0));
  EXPECT_EQ(line["msg"], "mine");
  EXPECT_EQ(line["field.msg"], "theirs");
}

TEST_F(Log, RecordsBelowTheLevelAreDropped) {
  configure(Level::kWarn, Format::kJson, &out_);
  trace("t");
  debug("d");
  info("i");
  warn("w");
  error("e");
  const std::vector<std::string> lines = lines_of(out_.str());
  ASSERT_EQ(lines.size(), 2u) << out_.str();
  EXPECT_EQ(nlohmann::json::parse(lines[0])["level"], "warn");
  EXPECT_EQ(nlohmann::json::parse(lines[1])["level"], "error");
  EXPECT_FALSE(enabled(Level::kInfo));
  EXPECT_TRUE(enabled(Level::kError));
}

TEST_F(Log, TraceLevelLetsEverythingThrough) {
  configure(Level::kTrace, Format::kText, &out_);
  trace("t");
  debug("d");
  EXPECT_EQ(out_.str(), "keel: trace: t\nkeel: debug: d\n");
}

TEST_F(Log, TextKeepsKeelsShapesAndAppendsFields) {
  configure(Level::kInfo, Format::kText, &out_);
  info("serving demo", {{"port", 8080}, {"dir", "/models/a b"}});
  warn("ledger off by one");
  error("the group failed");
  EXPECT_EQ(out_.str(),
            "keel: serving demo port=8080 dir=\"/models/a b\"\n"
            "keel: warning: ledger off by one\n"
            "error: the group failed\n");
}

// fatal() is how the CUDA backend dies on a broken device: the record must reach stderr (flushed) before the abort,
// whatever level the logger was set to.
TEST(LogDeathTest, FatalWritesOneErrorRecordThenAborts) {
  EXPECT_DEATH(
      {
        configure(Level::kError, Format::kText);
        fatal("CUDA call failed", {{"call", "cudaMemcpyAsync(a, b, n)"}, {"at", "kv_cache.cpp:42"}});
      },
      "error: CUDA call failed call=\"cudaMemcpyAsync\\(a, b, n\\)\" at=kv_cache.cpp:42");
}

TEST_F(Log, RawSpdlogCallsGoThroughTheSameFormat) {
  configure(Level::kInfo, Format::kJson, &out_);
  spdlog::warn("ssd cache: {} damaged records", 3);
  const nlohmann::json line = nlohmann::json::parse(lines_of(out_.str()).at(0));
  EXPECT_EQ(line["level"], "warn");
  EXPECT_EQ(line["msg"], "ssd cache: 3 damaged records");
}

TEST_F(Log, AMessageHoldingTheFieldMarkIsNotMistakenForFields) {
  configure(Level::kInfo, Format::kJson, &out_);
  spdlog::info("odd\x1f name");
  info("odd\x1f too", {{"k", 1}});
  const std::vector<std::string> lines = lines_of(out_.str());
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(nlohmann::json::parse(lines[0])["msg"], "odd\x1f name");
  const nlohmann::json second = nlohmann::json::parse(lines[1]);
  EXPECT_EQ(second["msg"], "odd  too");
  EXPECT_EQ(second["k"], 1);
}

TEST(LogFlags, ParseNamesTheFlagOnABadValue) {
  EXPECT_EQ(*parse_level("debug"), Level::kDebug);
  EXPECT_EQ(*parse_format("json"), Format::kJson);
  EXPECT_EQ(parse_level("loud").status().message(), "--log-level loud: expected trace, debug, info, warn or error");
  EXPECT_EQ(parse_format("xml").status().message(), "--log-format xml: expected text or json");
}

}  // namespace
}  // namespace keel::log
