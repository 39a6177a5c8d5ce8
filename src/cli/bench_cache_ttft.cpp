#include "cli/bench_cache_ttft.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <future>
#include <memory>
#include <random>

#include "backend/registry.h"
#include "base/units.h"
#include "cache/hot_tier.h"
#include "cache/ssd_format.h"
#include "cache/ssd_tier.h"
#include "engine/engine.h"
#include "engine/fingerprint.h"
#include "model/synthetic.h"

namespace keel::cli {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct Ttft {
  double seconds = 0;
  int cached_tokens = 0;
};

// From submit to the first token's event: one greedy token, so that event is also the last.
Result<Ttft> time_to_first_token(engine::Engine& engine, const std::vector<int32_t>& prompt) {
  engine::Request r;
  r.prompt = prompt;
  r.max_tokens = 1;
  r.sampling.temperature = 0;
  r.ignore_eos = true;
  auto done = std::make_shared<std::promise<std::pair<Clock::time_point, engine::Event>>>();
  auto future = done->get_future();
  const auto t0 = Clock::now();
  KEEL_ASSIGN_OR_RETURN(uint64_t id, engine.submit(std::move(r), [done](const engine::Event& e) {
                          if (e.finish != engine::FinishReason::kNone) done->set_value({Clock::now(), e});
                        }));
  (void)id;
  auto [t1, e] = future.get();
  if (e.finish == engine::FinishReason::kError)
    return internal_error("a {}-token prompt failed: {}", prompt.size(), e.error);
  return Ttft{std::chrono::duration<double>(t1 - t0).count(), e.cached_tokens};
}

struct CopyBandwidth {
  double to_device = 0;  // bytes/s, best of three passes
  double to_host = 0;
};

// The backend's own KV block copies (what the host tier uses), over `blocks` blocks, before any engine runs:
// the blocks written hold nothing yet.
CopyBandwidth measure_copy(backend::Backend& b, int blocks, size_t block_bytes) {
  std::vector<uint8_t> host(static_cast<size_t>(blocks) * block_bytes, 1);
  const double bytes = static_cast<double>(host.size());
  CopyBandwidth bw;
  for (int pass = 0; pass < 3; pass++) {
    auto t = Clock::now();
    for (int i = 0; i < blocks; i++) b.copy_kv_block_to_host(i, host.data() + static_cast<size_t>(i) * block_bytes);
    b.synchronize();
    bw.to_host = std::max(bw.to_host, bytes / seconds_since(t));
    t = Clock::now();
    for (int i = 0; i < blocks; i++) b.copy_kv_block_from_host(host.data() + static_cast<size_t>(i) * block_bytes, i);
    b.synchronize();
    bw.to_device = std::max(bw.to_device, bytes / seconds_since(t));
  }
  return bw;
}

// The segment files' pages are clean (written, fsynced), so the kernel can drop them: the next reads come from
// the disk. A benchmark's control of the machine, like bench's memory-read loop, so not through env::Env.
void drop_page_cache(const std::vector<cache::ssd::SegmentFile>& files) {
  for (const auto& f : files) {
    const int fd = ::open(f.path.c_str(), O_RDONLY);
    if (fd < 0) continue;
    (void)::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
}

// The fraction of the files' pages in the page cache (mincore): whether dropping them worked (overlay file
// systems may ignore the advice).
double resident_fraction(const std::vector<cache::ssd::SegmentFile>& files) {
  const long page = ::sysconf(_SC_PAGESIZE);
  uint64_t pages = 0, resident = 0;
  for (const auto& f : files) {
    const int fd = ::open(f.path.c_str(), O_RDONLY);
    if (fd < 0) continue;
    const off_t size = ::lseek(fd, 0, SEEK_END);
    void* map = size > 0 ? ::mmap(nullptr, static_cast<size_t>(size), PROT_READ, MAP_SHARED, fd, 0) : MAP_FAILED;
    ::close(fd);
    if (map == MAP_FAILED) continue;
    std::vector<unsigned char> in_core((static_cast<size_t>(size) + page - 1) / page);
    if (::mincore(map, static_cast<size_t>(size), in_core.data()) == 0) {
      pages += in_core.size();
      for (unsigned char c : in_core) resident += c & 1;
    }
    ::munmap(map, static_cast<size_t>(size));
  }
  return pages == 0 ? 0 : static_cast<double>(resident) / static_cast<double>(pages);
}

bool on_tmpfs(const std::string& dir) {
  struct statfs s;
  return ::statfs(dir.c_str(), &s) == 0 && s.f_type == TMPFS_MAGIC;
}

struct DiskRead {
  double bytes_per_second = 0;
  double resident = 0;  // fraction of the files still in the page cache after dropping it
};

// Sequential read of every segment file of `dir`, page cache dropped first (and again after): the disk's read
// bandwidth.
Result<DiskRead> measure_disk_read(const std::string& dir) {
  KEEL_ASSIGN_OR_RETURN(auto files, cache::ssd::list_segments(env::Env::posix(), dir));
  drop_page_cache(files);
  DiskRead r;
  r.resident = resident_fraction(files);
  std::vector<char> buf(8 << 20);
  uint64_t bytes = 0;
  const auto t = Clock::now();
  for (const auto& f : files) {
    const int fd = ::open(f.path.c_str(), O_RDONLY);
    if (fd < 0) return io_error("{}: cannot open for reading", f.path);
    ssize_t n;
    while ((n = ::read(fd, buf.data(), buf.size())) > 0) bytes += static_cast<uint64_t>(n);
    ::close(fd);
  }
  const double s = seconds_since(t);
  drop_page_cache(files);
  if (bytes == 0) return internal_error("{}: no segment bytes to read", dir);
  r.bytes_per_second = static_cast<double>(bytes) / s;
  return r;
}

struct Row {
  int tokens = 0;
  int cached_tokens = 0;  // what a warm run reuses: every full block but the one holding the last token
  double cold = 0, device = 0, ram = 0, ssd = 0;
  uint64_t ram_bytes = 0, ssd_bytes = 0;
  double ram_bound = 0, ssd_bound = 0;
  double disk_bw = 0;
  double disk_resident = 0;  // of the segment files, after dropping the page cache
  uint64_t ram_blocks = 0, ssd_blocks = 0, ssd_dropped = 0;
};

std::string ms(double s) { return s < 0.01 ? fmt::format("{:.3f}", s * 1e3) : fmt::format("{:.1f}", s * 1e3); }

}  // namespace

Result<std::vector<int>> parse_prompt_lengths(const std::string& text) {
  std::vector<int> out;
  size_t i = 0;
  while (i <= text.size()) {
    size_t j = text.find(',', i);
    if (j == std::string::npos) j = text.size();
    std::string word = text.substr(i, j - i);
    int scale = 1;
    if (!word.empty() && (word.back() == 'k' || word.back() == 'K')) {
      scale = 1024;
      word.pop_back();
    }
    char* end = nullptr;
    const long v = word.empty() ? 0 : std::strtol(word.c_str(), &end, 10);
    if (word.empty() || *end != '\0' || v * scale < 2 || v > (1 << 22) / scale)
      return invalid_argument("--prompt-lengths {}: '{}' is not a prompt length of at least 2 tokens (like 1024 or 8k)",
                              text, text.substr(i, j - i));
    out.push_back(static_cast<int>(v * scale));
    i = j + 1;
  }
  return out;
}

Result<nlohmann::json> run_cache_ttft(const CacheTtftArgs& a, bool quiet) {
  auto say = [&](const std::string& s) {
    if (!quiet) {
      std::printf("%s", s.c_str());
      std::fflush(stdout);
    }
  };
  KEEL_ASSIGN_OR_RETURN(std::unique_ptr<backend::Backend> backend, backend::create(a.backend));
  const bool gpu = backend->name() != "cpu";
  const std::string shape = a.synthetic.empty() ? (gpu ? "llama3-8b" : "llama-tiny") : a.synthetic;
  KEEL_ASSIGN_OR_RETURN(model::ModelConfig config, model::synthetic_config(shape));
  const std::vector<int> lengths = a.prompt_tokens.empty() ? std::vector<int>{1024, 8192, 32768} : a.prompt_tokens;
  const int longest = *std::max_element(lengths.begin(), lengths.end());
  constexpr int kBlockSize = 16;
  // Warm runs from the device and from RAM are cheap to repeat: the best of three. The SSD run needs a restart.
  constexpr int kWarmRepeats = 3;
  // A shape's own context may be shorter; the bench measures moving KV, which positions do not change.
  config.max_position_embeddings = std::max(config.max_position_embeddings, longest + kBlockSize);
  model::LoadOptions lo;
  lo.max_batch_tokens = a.max_num_batched_tokens > 0 ? a.max_num_batched_tokens : (gpu ? 2048 : 512);
  lo.block_size = kBlockSize;
  const int longest_blocks = (longest + kBlockSize - 1) / kBlockSize;
  lo.kv_blocks = longest_blocks + 2;
  KEEL_ASSIGN_OR_RETURN(std::unique_ptr<model::Model> model, model::Model::synthetic(config, backend.get(), lo, 42));
  const size_t block_bytes = engine::kv_block_bytes(*model);
  const cache::KvLayout layout = engine::cache_kv_layout(model->kv_layout());
  // Random weights of a named shape: nothing else may ever match these blocks.
  const cache::ModelFingerprint fingerprint = cache::model_fingerprint(
      "keel bench cache: synthetic " + shape + " seed 42", dtype_name(model->weights().dtype), layout);

  const CopyBandwidth copy = measure_copy(*backend, longest_blocks, block_bytes);
  const bool tmpfs = on_tmpfs(a.dir);
  nlohmann::json out;
  out["backend"] = backend->name();
  out["model"] = "synthetic " + shape;
  out["block_tokens"] = kBlockSize;
  out["block_bytes"] = block_bytes;
  out["max_num_batched_tokens"] = lo.max_batch_tokens;
  out["host_to_device_bytes_per_second"] = copy.to_device;
  out["device_to_host_bytes_per_second"] = copy.to_host;
  out["dir"] = a.dir;
  out["dir_on_tmpfs"] = tmpfs;
  say(fmt::format("keel bench cache: time to first token, cold and warm from each tier ({} backend, synthetic {}, "
                  "{} per block of {} tokens)\n",
                  backend->name(), shape, format_bytes(block_bytes), kBlockSize));
  say(fmt::format("  KV block copies (backend, {} blocks): host->device {:.2f} GB/s, device->host {:.2f} GB/s\n",
                  longest_blocks, copy.to_device / 1e9, copy.to_host / 1e9));
  say(fmt::format("  SSD tier in {}{}\n", a.dir, tmpfs ? " (tmpfs: its \"disk\" reads come from RAM)" : ""));

  const auto row_format =
      fmt::runtime("  {:>7}  {:>9}  {:>9} {:>8}  {:>9} {:>9} {:>8} {:>7} {:>7}  {:>9} {:>9} {:>8} {:>7} {:>7} {:>6}\n");
  say(fmt::format(row_format, "prompt", "cold", "device", "speedup", "RAM", "moved", "bound", "x bound", "net x", "SSD",
                  "moved", "bound", "x bound", "net x", "disk"));
  say(fmt::format(row_format, "tokens", "TTFT ms", "TTFT ms", "vs cold", "TTFT ms", "", "ms", "", "", "TTFT ms", "",
                  "ms", "", "", "GB/s"));
  std::vector<std::string> warnings;
  for (const int n : lengths) {
    Row row;
    row.tokens = n;
    const int blocks = (n + kBlockSize - 1) / kBlockSize;
    row.cached_tokens = (n - 1) / kBlockSize * kBlockSize;
    const int cached_blocks = row.cached_tokens / kBlockSize;
    std::mt19937 rng(static_cast<uint32_t>(n));
    std::vector<int32_t> prompt(n);
    for (int32_t& t : prompt) t = static_cast<int32_t>(rng() % static_cast<uint32_t>(config.vocab_size));

    cache::SsdTierOptions so;
    so.dir = env::join_path(a.dir, fmt::format("ttft-{}", n));
    so.max_payload_bytes = block_bytes;
    so.queue_blocks = static_cast<size_t>(blocks) + 1;  // every evicted block is queued: none is dropped
    so.max_bytes = 2 * static_cast<uint64_t>(blocks + 8) * (block_bytes + cache::ssd::kHeaderBytes) + (64ull << 20);
    so.fingerprint = fingerprint;
    so.layout = layout;
    engine::EngineOptions eo;
    eo.max_num_seqs = 1;
    eo.max_num_batched_tokens = lo.max_batch_tokens;
    eo.max_model_len = n + kBlockSize;
    eo.fingerprint = fingerprint;
    // Blocks reach the SSD by eviction, as this benchmark measures; write-through would add its device copies to
    // the cold run.
    eo.ssd_write_policy = cache::SsdWritePolicy::kBack;
    const std::vector<int32_t> warm_up = {1};  // the engine's first step, caching nothing
    {
      // Cold, then warm from the device; then every cached block goes straight down to the SSD.
      KEEL_ASSIGN_OR_RETURN(std::unique_ptr<cache::SsdTier> ssd, cache::SsdTier::open(env::Env::posix(), so));
      eo.ssd_tier = ssd.get();
      engine::Engine engine(model.get(), eo);
      KEEL_RETURN_IF_ERROR(time_to_first_token(engine, warm_up).status());
      KEEL_ASSIGN_OR_RETURN(Ttft cold, time_to_first_token(engine, prompt));
      row.cold = cold.seconds;
      row.device = 1e30;
      for (int rep = 0; rep < kWarmRepeats; rep++) {
        KEEL_ASSIGN_OR_RETURN(Ttft device, time_to_first_token(engine, prompt));
        if (cold.cached_tokens != 0 || device.cached_tokens != row.cached_tokens)
          return internal_error("{} tokens: {} cached cold and {} warm, expected 0 and {}", n, cold.cached_tokens,
                                device.cached_tokens, row.cached_tokens);
        row.device = std::min(row.device, device.seconds);
      }
      (void)engine.evict_prefix_cache();
      ssd->flush();
      row.ssd_dropped = engine.stats().ssd_cache_dropped;
    }  // the engine, then the tier: a clean shutdown writes the index checkpoint
    KEEL_ASSIGN_OR_RETURN(DiskRead disk, measure_disk_read(so.dir));
    row.disk_bw = disk.bytes_per_second;
    row.disk_resident = disk.resident;
    if (disk.resident > 0.1)
      warnings.push_back(fmt::format("  warning: {} tokens: {:.0f}% of the segment files stayed in the page cache "
                                     "after dropping it: the SSD figures are partly RAM\n",
                                     n, disk.resident * 100));
    {
      // A restart on the same directory: device and host RAM start empty, so the prompt's blocks come from the
      // SSD. Then they are evicted again, into host RAM this time, and come from there.
      KEEL_ASSIGN_OR_RETURN(std::unique_ptr<cache::SsdTier> ssd, cache::SsdTier::open(env::Env::posix(), so));
      KEEL_ASSIGN_OR_RETURN(std::unique_ptr<cache::HotTier> hot,
                            cache::HotTier::create(static_cast<uint64_t>(blocks + 1) * block_bytes, block_bytes));
      eo.ssd_tier = ssd.get();
      eo.hot_tier = hot.get();
      engine::Engine engine(model.get(), eo);
      KEEL_RETURN_IF_ERROR(time_to_first_token(engine, warm_up).status());
      KEEL_ASSIGN_OR_RETURN(Ttft from_ssd, time_to_first_token(engine, prompt));
      row.ssd = from_ssd.seconds;
      row.ssd_blocks = engine.stats().ssd_cache_hit_blocks;
      row.ram = 1e30;
      for (int rep = 0; rep < kWarmRepeats; rep++) {
        const uint64_t before = engine.stats().hot_cache_hit_blocks;
        (void)engine.evict_prefix_cache();
        KEEL_ASSIGN_OR_RETURN(Ttft from_ram, time_to_first_token(engine, prompt));
        row.ram = std::min(row.ram, from_ram.seconds);
        row.ram_blocks = engine.stats().hot_cache_hit_blocks - before;
      }
    }
    row.ram_bytes = row.ram_blocks * block_bytes;
    row.ssd_bytes = row.ssd_blocks * block_bytes;
    row.ram_bound = static_cast<double>(row.ram_bytes) / copy.to_device;
    row.ssd_bound = static_cast<double>(row.ssd_bytes) / row.disk_bw;
    if (static_cast<int>(row.ssd_blocks) != cached_blocks || static_cast<int>(row.ram_blocks) != cached_blocks)
      warnings.push_back(fmt::format("  warning: {} tokens: {} of {} blocks came from the SSD ({} dropped from its "
                                     "queue), {} from host RAM\n",
                                     n, row.ssd_blocks, cached_blocks, row.ssd_dropped, row.ram_blocks));
    // Net: the time a tier added over the warm device run (which computes the same last block), per bound.
    const double ram_net = (row.ram - row.device) / row.ram_bound, ssd_net = (row.ssd - row.device) / row.ssd_bound;
    auto x = [](double v) { return fmt::format("{:.1f}x", v); };
    say(fmt::format(row_format, row.tokens, ms(row.cold), ms(row.device), x(row.cold / row.device), ms(row.ram),
                    format_bytes(row.ram_bytes), ms(row.ram_bound), x(row.ram / row.ram_bound), x(ram_net),
                    ms(row.ssd), format_bytes(row.ssd_bytes), ms(row.ssd_bound), x(row.ssd / row.ssd_bound),
                    x(ssd_net), fmt::format("{:.2f}", row.disk_bw / 1e9)));
    out["rows"].push_back({{"prompt_tokens", row.tokens},
                           {"cached_tokens", row.cached_tokens},
                           {"cold_ms", row.cold * 1e3},
                           {"device_ms", row.device * 1e3},
                           {"ram_ms", row.ram * 1e3},
                           {"ram_blocks", row.ram_blocks},
                           {"ram_bytes", row.ram_bytes},
                           {"ram_bound_ms", row.ram_bound * 1e3},
                           {"ram_x_bound", row.ram / row.ram_bound},
                           {"ram_net_x_bound", ram_net},
                           {"ssd_ms", row.ssd * 1e3},
                           {"ssd_blocks", row.ssd_blocks},
                           {"ssd_bytes", row.ssd_bytes},
                           {"ssd_bound_ms", row.ssd_bound * 1e3},
                           {"ssd_x_bound", row.ssd / row.ssd_bound},
                           {"ssd_net_x_bound", ssd_net},
                           {"ssd_queue_dropped", row.ssd_dropped},
                           {"disk_read_bytes_per_second", row.disk_bw},
                           {"disk_page_cache_resident_after_drop", row.disk_resident}});
    }
  for (const std::string& w : warnings) say(w);

  say("  (warm runs compute the prompt's last block; bound = bytes moved / host->device copy bandwidth for RAM, "
      "/ disk read bandwidth for the SSD, both measured in this run; x bound = TTFT / bound; net x = (TTFT - device "
      "TTFT) / bound, the time the tier added)\n");
  return out;
}

}  // namespace keel::cli
