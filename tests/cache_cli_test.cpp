// keel cache ls|stats|verify|clear as a user drives it: exit codes and what is printed.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sys/wait.h>
#include <unistd.h>

#include "cache/ssd_format.h"
#include "keel_cli.h"
#include "env/env.h"

namespace {

using namespace keel;
using namespace keel::cache;

using CacheRun = keel::test::CliRun;
CacheRun keel_cache(const std::string& args) { return keel::test::run_keel("cache " + args); }

const KvLayout kLayout{.num_layers = 2, .num_kv_heads = 2, .head_dim = 8, .block_size = 4, .kv_dtype = DType::kBF16};

std::string record(const ModelFingerprint& fp, uint64_t i) {
  ssd::RecordHeader h;
  h.fingerprint = fp;
  h.hash = BlockHash{i + 1, i};
  h.n_tokens = 4;
  h.layout = kLayout;
  std::vector<uint8_t> payload(32, static_cast<uint8_t>(i));
  std::string out(ssd::kHeaderBytes, '\0');
  ssd::encode_header(h, payload, reinterpret_cast<uint8_t*>(out.data()));
  out.append(payload.begin(), payload.end());
  return out;
}

struct CacheDir {
  std::string dir;
  ModelFingerprint a = model_fingerprint("model a", "BF16", kLayout);
  ModelFingerprint b = model_fingerprint("model b", "BF16", kLayout);
  std::string seg1, seg2;

  CacheDir() {
    char tmpl[] = "/tmp/keel_cache_cli_XXXXXX";
    dir = mkdtemp(tmpl);
    seg1 = record(a, 0) + record(a, 1) + record(a, 2);
    seg2 = record(b, 3) + record(b, 4);
    write(1, seg1);
    write(2, seg2);
    // Not keel's: never listed, counted or removed.
    EXPECT_TRUE(env::Env::posix()->write_file_atomic(dir + "/notes.txt", "mine").ok());
  }
  ~CacheDir() { std::filesystem::remove_all(dir); }
  void write(uint64_t id, const std::string& bytes) {
    EXPECT_TRUE(env::Env::posix()->write_file_atomic(env::join_path(dir, ssd::segment_name(id)), bytes).ok());
  }
  std::string args() const { return "--ssd-cache-dir " + dir; }
};

TEST(CacheCli, LsListsSegmentsWithRecordsAndFingerprints) {
  CacheDir c;
  CacheRun r = keel_cache("ls " + c.args());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find(ssd::segment_name(1)), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(c.a.hex() + ":3"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(c.b.hex() + ":2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("2 segments, 5 records"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("notes.txt"), std::string::npos);
}

TEST(CacheCli, StatsTotalsPerFingerprint) {
  CacheDir c;
  CacheRun r = keel_cache("stats " + c.args());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("records       5"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(c.b.hex() + "  2 records"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(newest)"), std::string::npos) << r.out;
}

TEST(CacheCli, VerifyPassesOnASoundDirectory) {
  CacheDir c;
  CacheRun r = keel_cache("verify " + c.args());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("verified 5 records in 2 segments: 0 damaged, 0 torn tails"), std::string::npos) << r.out;
}

TEST(CacheCli, VerifyExitsOneAndSaysWhereOnACorruptedDirectory) {
  CacheDir c;
  const size_t rec = ssd::kHeaderBytes + 32;
  std::string flipped = c.seg1;
  flipped[rec + ssd::kHeaderBytes + 5] ^= 0x10;     // payload of the second record
  c.write(1, flipped);
  c.write(2, c.seg2.substr(0, c.seg2.size() - 7));  // torn tail
  CacheRun r = keel_cache("verify " + c.args());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find(ssd::segment_name(1) + " offset " + std::to_string(rec) + ": payload checksum mismatch"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find(ssd::segment_name(2) + " offset " + std::to_string(rec) + ": torn tail (truncated payload"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("1 damaged, 1 torn tails"), std::string::npos) << r.out;
  EXPECT_EQ(r.err.rfind("error: 1 damaged records", 0), 0u) << r.err;
}

TEST(CacheCli, VerifyPassesWhenTheOnlyDamageIsATornTail) {
  CacheDir c;
  c.write(2, c.seg2.substr(0, c.seg2.size() - 7));  // what a writer killed mid-record leaves
  CacheRun r = keel_cache("verify " + c.args());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("verified 4 records in 2 segments: 0 damaged, 1 torn tails"), std::string::npos) << r.out;
}

TEST(CacheCli, ClearOtherModelsKeepsTheNamedFingerprint) {
  CacheDir c;
  CacheRun r = keel_cache("clear " + c.args() + " --other-models --keep " + c.a.hex());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(env::Env::posix()->file_exists(env::join_path(c.dir, ssd::segment_name(1))));
  EXPECT_FALSE(env::Env::posix()->file_exists(env::join_path(c.dir, ssd::segment_name(2))));
  EXPECT_NE(r.out.find("removed 1 segments"), std::string::npos) << r.out;
}

TEST(CacheCli, ClearOtherModelsDefaultsToTheNewest) {
  CacheDir c;
  CacheRun r = keel_cache("clear " + c.args() + " --other-models");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("keeping fingerprint " + c.b.hex()), std::string::npos) << r.out;
  EXPECT_FALSE(env::Env::posix()->file_exists(env::join_path(c.dir, ssd::segment_name(1))));
  EXPECT_TRUE(env::Env::posix()->file_exists(env::join_path(c.dir, ssd::segment_name(2))));
}

TEST(CacheCli, ClearRemovesOnlyKeelsFiles) {
  CacheDir c;
  const std::string ckpt = env::join_path(c.dir, ssd::kCheckpointName);
  EXPECT_TRUE(env::Env::posix()->write_file_atomic(ckpt, "x").ok());
  CacheRun r = keel_cache("clear " + c.args());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(env::Env::posix()->file_exists(env::join_path(c.dir, ssd::segment_name(1))));
  EXPECT_FALSE(env::Env::posix()->file_exists(ckpt));
  EXPECT_TRUE(env::Env::posix()->file_exists(c.dir + "/notes.txt"));
  CacheRun ls = keel_cache("ls " + c.args());
  EXPECT_NE(ls.out.find("0 segments"), std::string::npos);
}

TEST(CacheCli, BenchCacheWarmsEachTierWithThePromptsWholePrefix) {
  CacheRun r = keel::test::run_keel("bench cache --prompt-lengths 64,200 --blocks 300 --gets 300 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["ttft"]["rows"].size(), 2u);
  for (const auto& row : j["ttft"]["rows"]) {
    const uint64_t blocks = row["cached_tokens"].get<uint64_t>() / 16;  // every full block but the last token's
    EXPECT_EQ(row["cached_tokens"], (row["prompt_tokens"].get<int>() - 1) / 16 * 16);
    EXPECT_EQ(row["ssd_blocks"], blocks) << row.dump();
    EXPECT_EQ(row["ram_blocks"], blocks) << row.dump();
    EXPECT_EQ(row["ssd_queue_dropped"], 0) << row.dump();
    EXPECT_GT(row["ram_bound_ms"].get<double>(), 0.0);
    EXPECT_GT(row["ssd_bound_ms"].get<double>(), 0.0);
  }
  EXPECT_EQ(j["ssd_index"]["rebuild_checkpoint_blocks"], 300);
  EXPECT_EQ(j["ssd_index"]["get_misses"], 0);
}

TEST(CacheCli, BenchCacheNamesABadPromptLength) {
  CacheRun r = keel::test::run_keel("bench cache --prompt-lengths 1k,x");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "error: --prompt-lengths 1k,x: 'x' is not a prompt length of at least 2 tokens (like 1024 or 8k)\n");
}

TEST(CacheCli, ErrorsAreOneLineAndExitOne) {
  CacheRun r = keel_cache("verify --ssd-cache-dir /nonexistent/keel-cache");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "error: --ssd-cache-dir /nonexistent/keel-cache: not a directory\n");
  CacheDir c;
  CacheRun bad = keel_cache("clear " + c.args() + " --other-models --keep xyz");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_EQ(bad.err.rfind("error: --keep: ", 0), 0u) << bad.err;
  EXPECT_EQ(keel_cache("ls").exit_code, 2);  // usage: --ssd-cache-dir is required
}

}  // namespace
