#include "doctor/platform.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <sstream>

#include "base/units.h"

namespace keel::doctor {

namespace {

std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

std::string read_or_empty(ProbeSource& source, const std::string& path) {
  auto text = source.read_file(path);
  return text.ok() ? *text : std::string();
}

std::string run_or_empty(ProbeSource& source, const std::vector<std::string>& argv) {
  auto out = source.run(argv);
  return out.ok() ? trim(*out) : std::string();
}

std::string or_unknown(std::string s) { return s.empty() ? std::string(kUnknown) : s; }

std::optional<uint64_t> parse_u64(std::string_view s) {
  std::string t = trim(s);
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), value);
  if (ec != std::errc() || end != t.data() + t.size() || t.empty()) return std::nullopt;
  return value;
}

// "key: value" / "key=value" files: /proc/cpuinfo, /proc/meminfo, /etc/os-release.
std::vector<std::pair<std::string, std::string>> key_values(const std::string& text, char sep) {
  std::vector<std::pair<std::string, std::string>> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    size_t at = line.find(sep);
    if (at == std::string::npos) continue;
    out.emplace_back(trim(std::string_view(line).substr(0, at)),
                     trim(std::string_view(line).substr(at + 1)));
  }
  return out;
}

std::string unquote(std::string s) {
  if (s.size() >= 2 && (s.front() == '"' || s.front() == '\'') && s.back() == s.front()) {
    return s.substr(1, s.size() - 2);
  }
  return s;
}

std::optional<uint64_t> meminfo_bytes(const std::vector<std::pair<std::string, std::string>>& kv,
                                      const char* key) {
  for (const auto& [k, v] : kv) {
    if (k != key) continue;
    std::string number = v.substr(0, v.find(' '));
    auto kib = parse_u64(number);
    if (kib) return *kib * 1024;
  }
  return std::nullopt;
}

// "always [madvise] never" -> "madvise".
std::string bracketed_choice(const std::string& text) {
  size_t open = text.find('['), close = text.find(']');
  if (open == std::string::npos || close == std::string::npos || close < open) return trim(text);
  return text.substr(open + 1, close - open - 1);
}

// The driver version from /proc/driver/nvidia/version: the first dotted number after "Kernel Module".
std::string driver_from_proc(const std::string& text) {
  size_t at = text.find("Kernel Module");
  if (at == std::string::npos) return "";
  std::istringstream in(text.substr(at));
  std::string word;
  while (in >> word) {
    if (!word.empty() && std::isdigit(static_cast<unsigned char>(word[0])) &&
        word.find('.') != std::string::npos &&
        std::all_of(word.begin(), word.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)) || c == '.'; })) {
      return word;
    }
  }
  return "";
}

// CFBundleVersion from an Info.plist (XML): the <string> after <key>CFBundleVersion</key>.
std::string plist_bundle_version(const std::string& plist) {
  size_t key = plist.find("<key>CFBundleVersion</key>");
  if (key == std::string::npos) return "";
  size_t open = plist.find("<string>", key);
  size_t close = plist.find("</string>", open);
  if (open == std::string::npos || close == std::string::npos) return "";
  open += 8;
  return trim(std::string_view(plist).substr(open, close - open));
}

void probe_linux(ProbeSource& source, Platform& p) {
  for (const auto& [k, v] : key_values(read_or_empty(source, "/etc/os-release"), '=')) {
    if (k == "PRETTY_NAME") p.os_name = or_unknown(unquote(v));
  }
  if (p.kernel == kUnknown) p.kernel = or_unknown(trim(read_or_empty(source, "/proc/sys/kernel/osrelease")));

  int processors = 0;
  for (const auto& [k, v] : key_values(read_or_empty(source, "/proc/cpuinfo"), ':')) {
    if (k == "processor") ++processors;
    // x86 names the model; some arm64 kernels only give "Hardware" or nothing at all.
    if ((k == "model name" || k == "Hardware") && p.cpu_model == kUnknown && !v.empty()) p.cpu_model = v;
  }
  if (processors > 0) p.cpu_logical_cores = processors;

  auto meminfo = key_values(read_or_empty(source, "/proc/meminfo"), ':');
  p.ram_total_bytes = meminfo_bytes(meminfo, "MemTotal");
  p.ram_available_bytes = meminfo_bytes(meminfo, "MemAvailable");

  std::string thp = read_or_empty(source, "/sys/kernel/mm/transparent_hugepage/enabled");
  if (!trim(thp).empty()) p.transparent_hugepages = bracketed_choice(thp);

  if (auto mode = parse_u64(read_or_empty(source, "/proc/sys/vm/overcommit_memory"))) {
    static const char* kNames[] = {"heuristic", "always", "never"};
    p.overcommit = *mode < 3 ? fmt::format("{} ({})", *mode, kNames[*mode]) : std::to_string(*mode);
  }

  // Without NVML the kernel module still says which driver is loaded.
  if (p.nvidia.driver_version == kUnknown) {
    std::string from_proc = driver_from_proc(read_or_empty(source, "/proc/driver/nvidia/version"));
    if (!from_proc.empty()) {
      p.nvidia.driver_version = from_proc;
      if (p.nvidia.status == "no NVIDIA driver") {
        p.nvidia.status = "kernel module loaded, NVML not available";
      }
    }
  }
}

void probe_macos(ProbeSource& source, Platform& p) {
  p.macos_product_version = or_unknown(run_or_empty(source, {"sw_vers", "-productVersion"}));
  p.macos_build = or_unknown(run_or_empty(source, {"sw_vers", "-buildVersion"}));
  if (p.macos_product_version != kUnknown) p.os_name = "macOS " + p.macos_product_version;
  p.iogpu_kext_version = or_unknown(plist_bundle_version(
      read_or_empty(source, "/System/Library/Extensions/IOGPUFamily.kext/Contents/Info.plist")));
  p.cpu_model = or_unknown(run_or_empty(source, {"sysctl", "-n", "machdep.cpu.brand_string"}));
  if (auto n = parse_u64(run_or_empty(source, {"sysctl", "-n", "hw.logicalcpu"}))) {
    p.cpu_logical_cores = static_cast<int>(*n);
  }
  p.ram_total_bytes = parse_u64(run_or_empty(source, {"sysctl", "-n", "hw.memsize"}));
  p.transparent_hugepages = "n/a (macOS)";
  p.overcommit = "n/a (macOS)";
}

void probe_cache_dir(ProbeSource& source, const std::string& cache_dir, Platform& p) {
  if (cache_dir.empty()) return;
  p.cache_dir = cache_dir;
  // Free space is a property of the file system, so the nearest existing parent answers for a cache
  // directory keel has not created yet.
  std::string dir = cache_dir;
  while (!source.is_directory(dir)) {
    size_t slash = dir.find_last_of('/');
    if (slash == std::string::npos) {
      dir = ".";
      break;
    }
    if (slash == 0) {
      dir = "/";
      break;
    }
    dir.resize(slash);
  }
  auto free_bytes = source.disk_free_bytes(dir);
  if (!free_bytes.ok()) return;
  p.cache_dir_probed = dir;
  p.cache_dir_free_bytes = *free_bytes;
}

nlohmann::ordered_json bytes_or_unknown(const std::optional<uint64_t>& bytes) {
  if (!bytes) return kUnknown;
  return *bytes;
}

}  // namespace

Platform probe_platform(ProbeSource& source, const std::string& cache_dir) {
  Platform p;
  if (auto u = source.uname(); u.ok()) {
    if (u->sysname == "Linux") p.os = "linux";
    else if (u->sysname == "Darwin") p.os = "macos";
    else if (!u->sysname.empty()) {
      p.os = u->sysname;
      std::transform(p.os.begin(), p.os.end(), p.os.begin(), [](unsigned char c) { return std::tolower(c); });
    }
    p.kernel = or_unknown(u->release);
    p.arch = or_unknown(u->machine);
  }
  p.nvidia = source.nvidia();
  if (p.os == "macos") probe_macos(source, p);
  else probe_linux(source, p);  // also the best guess when uname failed

  if (auto limit = source.memlock_limit(); limit.ok()) {
    if (!limit->has_value()) {
      p.memlock_limit = "unlimited";
    } else {
      p.memlock_limit_bytes = **limit;
      p.memlock_limit = format_bytes(**limit);
    }
  }
  probe_cache_dir(source, cache_dir, p);
  return p;
}

nlohmann::ordered_json platform_to_json(const Platform& p) {
  using json = nlohmann::ordered_json;
  json gpus = json::array();
  for (const auto& g : p.nvidia.gpus) {
    gpus.push_back({{"index", g.index},
                    {"name", g.name},
                    {"uuid", g.uuid},
                    {"pci_bus_id", g.pci_bus_id},
                    {"memory_total_bytes", bytes_or_unknown(g.memory_total_bytes)},
                    {"memory_free_bytes", bytes_or_unknown(g.memory_free_bytes)},
                    {"compute_capability", g.compute_capability},
                    {"ecc_mode", g.ecc_mode},
                    {"ecc_pending", g.ecc_pending},
                    {"persistence_mode", g.persistence_mode},
                    {"remapped_rows", g.remapped_rows}});
  }
  json out = {
      {"os", p.os},
      {"os_name", p.os_name},
      {"kernel", p.kernel},
      {"arch", p.arch},
      {"cpu", p.cpu_model},
      {"cpu_logical_cores", p.cpu_logical_cores ? json(*p.cpu_logical_cores) : json(kUnknown)},
      {"ram_total_bytes", bytes_or_unknown(p.ram_total_bytes)},
      {"ram_available_bytes", bytes_or_unknown(p.ram_available_bytes)},
      {"nvidia",
       {{"status", p.nvidia.status},
        {"driver_version", p.nvidia.driver_version},
        {"cuda_driver_version", p.nvidia.cuda_driver_version},
        {"gpus", gpus}}},
      {"cache_dir", p.cache_dir},
      {"cache_dir_free_bytes", bytes_or_unknown(p.cache_dir_free_bytes)},
      {"memlock_limit", p.memlock_limit},
      {"transparent_hugepages", p.transparent_hugepages},
      {"overcommit_memory", p.overcommit},
  };
  if (p.os == "macos") {
    out["macos"] = {{"product_version", p.macos_product_version},
                    {"build", p.macos_build},
                    {"iogpu_kext_version", p.iogpu_kext_version}};
  }
  return out;
}

int compare_versions(const std::string& a, const std::string& b) {
  auto split = [](const std::string& s) {
    std::vector<std::string> parts;
    std::string cur;
    for (char c : s) {
      if (c == '.' || c == '-' || c == '_') {
        parts.push_back(cur);
        cur.clear();
      } else {
        cur += c;
      }
    }
    parts.push_back(cur);
    return parts;
  };
  auto pa = split(a), pb = split(b);
  size_t n = std::max(pa.size(), pb.size());
  for (size_t i = 0; i < n; ++i) {
    std::string x = i < pa.size() ? pa[i] : "0";
    std::string y = i < pb.size() ? pb[i] : "0";
    auto nx = parse_u64(x), ny = parse_u64(y);
    if (nx && ny) {
      if (*nx != *ny) return *nx < *ny ? -1 : 1;
    } else if (x != y) {
      return x < y ? -1 : 1;
    }
  }
  return 0;
}

}  // namespace keel::doctor
