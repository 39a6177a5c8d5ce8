// --log-level and --log-format on a command that logs: keel generate as a two-rank CPU group, whose launcher logs
// the ranks it started and whose rank 0 logs the group it joined. Every record is a JSON line with ts, level and
// msg; the command's output (the tokens on stdout) keeps its shape; --log-level warn drops the info records.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <sstream>
#include <string>
#include <vector>

#include "keel_cli.h"

namespace {

using keel::test::CliRun;
using keel::test::run_keel;

const std::string kModel = std::string(KEEL_SOURCE_DIR) + "/tests/golden/models/llama3_v4";

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(line);
  return lines;
}

CliRun generate_two_ranks(const std::string& log_flags) {
  return run_keel("generate " + kModel + " --tokens '1 2 3' --max-tokens 2 --ids --tensor-parallel 2 " + log_flags,
                  false, 120);
}

TEST(LogFlags, JsonFormatWritesEveryRecordAsAJsonLineWithTsLevelAndMsg) {
  const CliRun r = generate_two_ranks("--log-format json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(lines_of(r.out).size(), 1u) << r.out;  // the ids: output, not a log record
  bool launched = false;
  for (const std::string& line : lines_of(r.err)) {
    const nlohmann::json record = nlohmann::json::parse(line, nullptr, false);
    ASSERT_TRUE(record.is_object()) << "not a JSON line: " << line;
    EXPECT_TRUE(record["ts"].is_string()) << line;
    EXPECT_TRUE(record["level"].is_string()) << line;
    ASSERT_TRUE(record["msg"].is_string()) << line;
    launched |= record["level"] == "info" && record["msg"].get<std::string>().find("launched 2 ranks") == 0;
  }
  EXPECT_TRUE(launched) << r.err;
}

TEST(LogFlags, WarnLevelDropsTheInfoRecords) {
  const CliRun r = generate_two_ranks("--log-level warn");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err.find("launched"), std::string::npos) << r.err;
  EXPECT_EQ(lines_of(r.out).size(), 1u) << r.out;
}

TEST(LogFlags, TextIsTheDefaultAndABadValueIsAUsageError) {
  const CliRun text = generate_two_ranks("");
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.err.find("keel: launched 2 ranks"), std::string::npos) << text.err;
  const CliRun bad = run_keel("generate " + kModel + " --tokens 1 --log-level loud");
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  EXPECT_NE(bad.err.find("--log-level"), std::string::npos) << bad.err;
}

}  // namespace
