// The readable form of a DoctorReport.
#include <sstream>

#include "base/units.h"
#include "doctor/doctor.h"

namespace keel::doctor {

namespace {

std::string bytes_or_unknown(const std::optional<uint64_t>& bytes) {
  return bytes ? format_bytes(*bytes) : std::string(kUnknown);
}

void row(std::ostringstream& out, const char* label, const std::string& value) {
  out << fmt::format("  {:<22}{}\n", label, value);
}

}  // namespace

std::string report_to_text(const DoctorReport& report) {
  const Platform& p = report.platform;
  std::ostringstream out;
  out << "keel doctor\n\nPlatform\n";
  row(out, "OS", p.os_name == kUnknown ? p.os : p.os_name);
  row(out, "Kernel", p.kernel + (p.arch == kUnknown ? "" : " (" + p.arch + ")"));
  if (p.os == "macos") {
    row(out, "macOS build", p.macos_build);
    row(out, "IOGPUFamily kext", p.iogpu_kext_version);
  }
  row(out, "CPU", p.cpu_model + (p.cpu_logical_cores ? fmt::format(" ({} logical cores)", *p.cpu_logical_cores) : ""));
  row(out, "RAM", bytes_or_unknown(p.ram_total_bytes) + " total, " + bytes_or_unknown(p.ram_available_bytes) +
                      " available");
  row(out, "NVIDIA", p.nvidia.status);
  if (p.nvidia.driver_version != kUnknown || p.nvidia.status == "ok") {
    row(out, "Driver", p.nvidia.driver_version + " (CUDA " + p.nvidia.cuda_driver_version + ")");
  }
  for (const auto& g : p.nvidia.gpus) {
    row(out, fmt::format("GPU {}", g.index).c_str(),
        fmt::format("{}, {} ({} free), compute {}, {}", g.name, bytes_or_unknown(g.memory_total_bytes),
                    bytes_or_unknown(g.memory_free_bytes), g.compute_capability, g.pci_bus_id));
    row(out, "", fmt::format("ECC {} (pending {}), persistence {}", g.ecc_mode, g.ecc_pending, g.persistence_mode));
    row(out, "", "remapped rows: " + g.remapped_rows);
  }
  std::string disk = bytes_or_unknown(p.cache_dir_free_bytes) + " free";
  if (p.cache_dir_probed != kUnknown && p.cache_dir_probed != p.cache_dir) disk += " (at " + p.cache_dir_probed + ")";
  row(out, "Cache dir", p.cache_dir + ": " + disk);
  row(out, "Locked memory limit", p.memlock_limit);
  row(out, "Transparent hugepages", p.transparent_hugepages);
  row(out, "Overcommit", p.overcommit);

  out << "\nFindings\n";
  if (report.findings.empty()) out << "  none\n";
  for (const auto& f : report.findings) {
    out << fmt::format("\n  [{}] {}: {}\n", severity_name(f.severity), f.id, f.title);
    for (const auto& e : f.evidence) out << "    > " << e << "\n";
    out << "    advice: " << f.advice << "\n";
  }
  if (!report.problems.empty()) {
    out << "\nLogs not fully read\n";
    for (const auto& problem : report.problems) out << "  " << problem << "\n";
  }
  return out.str();
}

}  // namespace keel::doctor
