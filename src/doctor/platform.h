// The platform report: what keel runs on, read defensively (anything missing is "unknown", never an error).
// All reads go through a ProbeSource so tests can hand in a fake /proc, /sys and command outputs.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "env/env.h"

namespace keel::doctor {

inline constexpr const char* kUnknown = "unknown";

struct GpuInfo {
  int index = 0;
  std::string name = kUnknown;
  std::string uuid = kUnknown;
  std::string pci_bus_id = kUnknown;
  std::optional<uint64_t> memory_total_bytes;
  std::optional<uint64_t> memory_free_bytes;
  std::string compute_capability = kUnknown;  // "9.0"
  std::string ecc_mode = kUnknown;            // "enabled", "disabled", "not supported"
  std::string ecc_pending = kUnknown;         // mode after the next reboot
  std::string persistence_mode = kUnknown;    // "enabled", "disabled", "not supported"
  std::string remapped_rows = kUnknown;       // "0 correctable, 0 uncorrectable, pending: no, failure: no"
};

struct NvidiaInfo {
  // "ok", "no NVIDIA driver", or why NVML could not answer ("NVML init failed: ...").
  std::string status = "no NVIDIA driver";
  std::string driver_version = kUnknown;       // "580.65.06"
  std::string cuda_driver_version = kUnknown;  // highest CUDA the driver supports: "13.0"
  std::vector<GpuInfo> gpus;
};

struct Platform {
  std::string os = kUnknown;          // "linux", "macos" or the kernel's own name
  std::string os_name = kUnknown;     // "Debian GNU/Linux 12 (bookworm)", "macOS 26.4.1"
  std::string kernel = kUnknown;      // "6.8.0-45-generic", "25.4.0"
  std::string arch = kUnknown;        // "x86_64", "arm64"
  std::string macos_product_version = kUnknown;  // "26.4.1"
  std::string macos_build = kUnknown;            // "25E253"
  std::string iogpu_kext_version = kUnknown;     // IOGPUFamily.kext CFBundleVersion: "130.13"
  std::string cpu_model = kUnknown;
  std::optional<int> cpu_logical_cores;
  std::optional<uint64_t> ram_total_bytes;
  std::optional<uint64_t> ram_available_bytes;
  NvidiaInfo nvidia;
  std::string cache_dir = kUnknown;   // the directory asked about, and the one free space was read at
  std::string cache_dir_probed = kUnknown;
  std::optional<uint64_t> cache_dir_free_bytes;
  std::string memlock_limit = kUnknown;       // "unlimited" or a byte count like "8.0 MiB"
  std::optional<uint64_t> memlock_limit_bytes;  // empty when unlimited or unknown
  std::string transparent_hugepages = kUnknown;  // "always", "madvise", "never"
  std::string overcommit = kUnknown;             // "0 (heuristic)", "1 (always)", "2 (never)"
};

struct Uname {
  std::string sysname;  // "Linux", "Darwin"
  std::string release;
  std::string machine;
};

// Where the probe reads from. The host implementation reads files under a root (normally "/") through
// an Env and runs a few fixed commands (sw_vers, sysctl); tests supply canned answers.
class ProbeSource {
 public:
  virtual ~ProbeSource() = default;
  virtual Result<Uname> uname() = 0;
  virtual Result<std::string> read_file(const std::string& path) = 0;
  // Runs argv[0] with arguments (no shell) and returns its standard output.
  virtual Result<std::string> run(const std::vector<std::string>& argv) = 0;
  virtual bool is_directory(const std::string& path) = 0;
  virtual Result<uint64_t> disk_free_bytes(const std::string& path) = 0;
  // RLIMIT_MEMLOCK soft limit; an empty optional means unlimited.
  virtual Result<std::optional<uint64_t>> memlock_limit() = 0;
  // The NVIDIA driver's answers (NVML); status "no NVIDIA driver" when libnvidia-ml is absent.
  virtual NvidiaInfo nvidia() = 0;
};

// The real machine: files under `root` through `env`, commands through posix_spawn, NVML through dlopen.
std::unique_ptr<ProbeSource> host_probe_source(env::Env* env, std::string root = "/");

// Reads everything the report shows. `cache_dir` is where free disk is measured (the nearest existing
// parent when it does not exist yet).
Platform probe_platform(ProbeSource& source, const std::string& cache_dir);

nlohmann::ordered_json platform_to_json(const Platform& platform);

// "1.5.10" vs "1.10": numeric dotted comparison; non-numeric parts compare as text. -1, 0 or 1.
int compare_versions(const std::string& a, const std::string& b);

}  // namespace keel::doctor
