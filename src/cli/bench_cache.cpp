// keel bench cache: first the tiers under a model (bench_cache_ttft.h: time to first token cold and warm from
// the device, host RAM and the SSD, each against its transfer bound), then the SSD tier on its own, without a
// model: writes N blocks through the background writer, then measures what a restart costs (the index
// checkpoint, and the header scan it saves), and the latency of get() (read + checksum re-verification) on
// random blocks. The numbers to watch: warm-from-SSD TTFT against its bound, rebuild time for 100k blocks and
// get p99.
#include <stdlib.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "base/units.h"
#include "cache/ssd_tier.h"
#include "cli/bench_cache_ttft.h"
#include "cli/commands.h"

namespace keel::cli {

namespace {

using Clock = std::chrono::steady_clock;

struct BenchCacheArgs {
  std::string dir;  // "": a fresh temporary directory, removed afterwards
  CacheTtftArgs ttft;
  std::string prompt_lengths = "1k,8k,32k";
  bool skip_ttft = false;
  bool skip_index = false;
  uint64_t blocks = 100'000;
  std::string payload = "4KB";
  std::string segment_size = "256MB";
  size_t queue_blocks = 64;
  uint64_t gets = 20'000;
  bool json = false;
};

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

cache::BlockHash bench_block(uint64_t i) { return cache::BlockHash{i * 0x9e3779b97f4a7c15ull + 1, i}; }

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

Result<std::unique_ptr<cache::SsdTier>> open_tier(const cache::SsdTierOptions& o, double* seconds) {
  const auto t = Clock::now();
  auto tier = cache::SsdTier::open(env::Env::posix(), o);
  *seconds = seconds_since(t);
  return tier;
}

// The SSD tier without a model, in `dir` (new): the results go into `out`, and are printed unless --json.
// Returns the exit code.
int run_index_bench(const BenchCacheArgs& a, const std::string& dir, uint64_t payload_bytes, uint64_t segment_bytes,
                    nlohmann::json& out) {
  cache::SsdTierOptions o;
  o.dir = dir;
  o.max_payload_bytes = payload_bytes;
  o.queue_blocks = a.queue_blocks;
  o.segment_bytes = segment_bytes;
  o.max_bytes = std::max<uint64_t>(2 * a.blocks * (payload_bytes + 256), 64 * segment_bytes);
  o.layout = cache::KvLayout{.num_layers = 1, .num_kv_heads = 1, .head_dim = static_cast<uint32_t>(payload_bytes / 32),
                             .block_size = 16, .kv_dtype = DType::kBF16};
  o.fingerprint = cache::model_fingerprint("keel bench cache", "BF16", o.layout);

  out["blocks"] = a.blocks;
  out["payload_bytes"] = payload_bytes;
  out["dir"] = dir;
  int rc = 0;
  {
    double open_s = 0;
    auto tier = open_tier(o, &open_s);
    if (!tier.ok()) return report(tier.status());
    std::vector<uint8_t> bytes(payload_bytes);
    for (size_t k = 0; k < bytes.size(); k++) bytes[k] = static_cast<uint8_t>(k * 7 + 1);
    // Writes as fast as the writer takes them: a full queue waits for it (flush) instead of dropping, so
    // every block lands and the figure is the disk path's throughput.
    const auto t = Clock::now();
    for (uint64_t i = 0; i < a.blocks; i++) {
      bytes[0] = static_cast<uint8_t>(i);
      cache::BlockHash parent = i == 0 ? cache::BlockHash{} : bench_block(i - 1);
      while (!(*tier)->put(bench_block(i), parent, 16, bytes)) {
        if ((*tier)->stats().paused) return report(io_error("{}: writing paused (disk full or write error)", dir));
        (*tier)->flush();
      }
    }
    (*tier)->flush();
    const double write_s = seconds_since(t);
    const cache::SsdTierStats st = (*tier)->stats();
    out["write_seconds"] = write_s;
    out["write_blocks_per_second"] = static_cast<double>(a.blocks) / write_s;
    out["write_mb_per_second"] = static_cast<double>(st.bytes_on_disk) / write_s / 1e6;
    out["bytes_on_disk"] = st.bytes_on_disk;
    out["segments"] = st.segments;
    out["written"] = st.written;
    const auto c = Clock::now();
    tier->reset();  // clean shutdown: writes the index checkpoint
    out["shutdown_checkpoint_seconds"] = seconds_since(c);
  }
  {
    // Restart after a clean stop: the checkpoint is read and validated, no record header is.
    double open_s = 0;
    auto tier = open_tier(o, &open_s);
    if (!tier.ok()) return report(tier.status());
    const cache::SsdTierStats st = (*tier)->stats();
    out["rebuild_checkpoint_seconds"] = open_s;
    out["rebuild_checkpoint_blocks"] = st.blocks;
    out["rebuild_checkpoint_segments_from_checkpoint"] = st.segments_from_checkpoint;
    // Random gets over everything written: read, re-verify both checksums, copy out.
    std::mt19937_64 rng(1);
    std::vector<uint8_t> buf(payload_bytes);
    std::vector<double> micros;
    micros.reserve(a.gets);
    uint64_t misses = 0;
    for (uint64_t k = 0; k < a.gets && a.blocks > 0; k++) {
      const uint64_t i = rng() % a.blocks;
      const auto t = Clock::now();
      const bool hit = (*tier)->get(bench_block(i), buf);
      micros.push_back(seconds_since(t) * 1e6);
      misses += hit ? 0 : 1;
    }
    out["get_p50_us"] = percentile(micros, 0.50);
    out["get_p99_us"] = percentile(micros, 0.99);
    out["get_misses"] = misses;
    if (misses > 0) rc = 1;
  }
  {
    // Restart after a crash (no checkpoint: the last open consumed it and this one writes none): every
    // segment's headers are read.
    cache::SsdTierOptions scan = o;
    scan.checkpoint = false;
    double open_s = 0;
    auto tier = open_tier(scan, &open_s);
    if (!tier.ok()) return report(tier.status());
    out["rebuild_scan_seconds"] = open_s;
    out["rebuild_scan_blocks"] = (*tier)->stats().blocks;
    out["rebuild_scan_records"] = (*tier)->stats().records_scanned;
  }

  if (a.json) return rc;
  std::printf("keel bench cache: the SSD tier without a model, %llu blocks of %s in %s\n", static_cast<unsigned long long>(a.blocks),
              format_bytes(payload_bytes).c_str(), dir.c_str());
  std::printf("  write              %8.0f blocks/s  %8.1f MB/s  (%.2f s, %llu segments)\n",
              out["write_blocks_per_second"].get<double>(), out["write_mb_per_second"].get<double>(),
              out["write_seconds"].get<double>(), static_cast<unsigned long long>(out["segments"].get<uint64_t>()));
  std::printf("  shutdown           %8.1f ms  (index checkpoint written)\n",
              out["shutdown_checkpoint_seconds"].get<double>() * 1e3);
  std::printf("  restart, checkpoint%8.1f ms  (%llu blocks)\n", out["rebuild_checkpoint_seconds"].get<double>() * 1e3,
              static_cast<unsigned long long>(out["rebuild_checkpoint_blocks"].get<uint64_t>()));
  std::printf("  restart, scan      %8.1f ms  (%llu blocks; headers read, page cache warm)\n",
              out["rebuild_scan_seconds"].get<double>() * 1e3,
              static_cast<unsigned long long>(out["rebuild_scan_blocks"].get<uint64_t>()));
  std::printf("  get                p50 %.1f us  p99 %.1f us  (%llu random gets, checksums re-verified)\n",
              out["get_p50_us"].get<double>(), out["get_p99_us"].get<double>(), static_cast<unsigned long long>(a.gets));
  if (rc != 0) std::fprintf(stderr, "error: %llu gets missed blocks that were written\n",
                            static_cast<unsigned long long>(out["get_misses"].get<uint64_t>()));
  return rc;
}

int run_bench_cache(BenchCacheArgs a) {
  auto payload = parse_bytes(a.payload);
  if (!payload.ok() || *payload == 0) return report(invalid_argument("--payload-bytes: '{}' is not a size", a.payload));
  auto segment = parse_bytes(a.segment_size);
  if (!segment.ok() || *segment == 0) return report(invalid_argument("--segment-size: '{}' is not a size", a.segment_size));
  auto lengths = parse_prompt_lengths(a.prompt_lengths);
  if (!lengths.ok()) return report(lengths.status());
  a.ttft.prompt_tokens = *lengths;
  std::string dir = a.dir;
  const bool temporary = dir.empty();
  std::error_code ec;
  if (temporary) {
    std::string tmpl = (std::filesystem::temp_directory_path(ec) / "keel-bench-cache-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) return report(io_error("{}: cannot create a temporary directory", tmpl));
    dir = tmpl;
  } else if (std::filesystem::exists(dir, ec) && !std::filesystem::is_empty(dir, ec)) {
    // Never write into (or time against) a cache someone uses.
    return report(invalid_argument("--dir {}: not empty; give a new or empty directory", dir));
  }
  int rc = 0;
  nlohmann::json out;
  if (!a.skip_ttft) {
    a.ttft.dir = dir;
    auto r = run_cache_ttft(a.ttft, a.json);
    if (!r.ok()) {
      rc = report(r.status().with_context("keel bench cache"));
    } else {
      out["ttft"] = std::move(*r);
    }
    if (!a.skip_index && !a.json) std::printf("\n");
  }
  if (rc == 0 && !a.skip_index)
    rc = run_index_bench(a, env::join_path(dir, "index"), *payload, *segment, out["ssd_index"]);
  if (temporary) std::filesystem::remove_all(dir, ec);
  if (a.json) std::printf("%s\n", out.dump(2).c_str());
  return rc;
}

}  // namespace

void add_bench_cache(CLI::App& app, Context& ctx) {
  CLI::App* bench = app.get_subcommand("bench");
  auto* cmd = bench->add_subcommand(
      "cache", "Prefix cache benchmark: TTFT cold and warm from each tier; SSD write throughput, restart, get latency");
  static BenchCacheArgs a;
  cmd->add_option("--dir", a.dir, "A new or empty directory to write in (default: a temporary one, removed after)");
  cmd->add_option("--backend", a.ttft.backend, "TTFT table: cpu or cuda")->capture_default_str();
  cmd->add_option("--synthetic", a.ttft.synthetic,
                  "TTFT table: the model shape (default llama-tiny on cpu, llama3-8b on cuda)");
  cmd->add_option("--prompt-lengths", a.prompt_lengths, "TTFT table: prompt lengths in tokens (k = 1024)")
      ->capture_default_str();
  cmd->add_option("--max-num-batched-tokens", a.ttft.max_num_batched_tokens,
                  "TTFT table: prefill chunk (default 512 on cpu, 2048 on cuda)")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--skip-ttft", a.skip_ttft, "Only the SSD tier without a model");
  cmd->add_flag("--skip-index", a.skip_index, "Only the TTFT table");
  cmd->add_option("--blocks", a.blocks, "Blocks to write")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--payload-bytes", a.payload, "Bytes of one block's payload")->capture_default_str();
  cmd->add_option("--segment-size", a.segment_size, "Segment file size")->capture_default_str();
  cmd->add_option("--queue-blocks", a.queue_blocks, "Write queue length in blocks")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--gets", a.gets, "Random gets to time")->capture_default_str();
  cmd->add_flag("--json", a.json, "Print the results as JSON");
  cmd->callback([&ctx] { ctx.exit_code = run_bench_cache(a); });
}

}  // namespace keel::cli
