#include "doctor/platform.h"

#include <gtest/gtest.h>

#include "doctor/test_util.h"

namespace keel::doctor {
namespace {

using testing::FakeProbeSource;
using testing::testdata;

NvidiaInfo h100_driver() {
  NvidiaInfo nv;
  nv.status = "ok";
  nv.driver_version = "580.65.06";
  nv.cuda_driver_version = "13.0";
  GpuInfo gpu;
  gpu.name = "NVIDIA H100 80GB HBM3";
  gpu.uuid = "GPU-7f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b";
  gpu.pci_bus_id = "00000000:18:00.0";
  gpu.memory_total_bytes = 85520809984ull;
  gpu.memory_free_bytes = 84935966720ull;
  gpu.compute_capability = "9.0";
  gpu.ecc_mode = "enabled";
  gpu.ecc_pending = "enabled";
  gpu.persistence_mode = "enabled";
  gpu.remapped_rows = "0 correctable, 0 uncorrectable, pending: no, failure: no";
  nv.gpus.push_back(gpu);
  return nv;
}

TEST(Platform, ReadsAFakeLinuxRoot) {
  FakeProbeSource source(testdata("platform/linux-h100"));
  source.uname_value = {"Linux", "5.15.0-119-generic", "x86_64"};
  source.nvidia_value = h100_driver();
  source.free_bytes["/var/cache"] = 500ull << 30;
  Platform p = probe_platform(source, "/var/cache/keel");

  EXPECT_EQ(p.os, "linux");
  EXPECT_EQ(p.os_name, "Ubuntu 24.04.1 LTS");
  EXPECT_EQ(p.kernel, "5.15.0-119-generic");
  EXPECT_EQ(p.arch, "x86_64");
  EXPECT_EQ(p.cpu_model, "Intel(R) Xeon(R) Platinum 8480+");
  EXPECT_EQ(p.cpu_logical_cores, 4);
  EXPECT_EQ(p.ram_total_bytes, 2113388540ull * 1024);
  EXPECT_EQ(p.ram_available_bytes, 2034567890ull * 1024);
  EXPECT_EQ(p.transparent_hugepages, "madvise");
  EXPECT_EQ(p.overcommit, "0 (heuristic)");
  EXPECT_EQ(p.memlock_limit, "8.0 MiB");
  EXPECT_EQ(p.memlock_limit_bytes, 8ull << 20);
  EXPECT_EQ(p.nvidia.status, "ok");
  EXPECT_EQ(p.nvidia.driver_version, "580.65.06");  // NVML wins over /proc/driver/nvidia/version
  ASSERT_EQ(p.nvidia.gpus.size(), 1u);
  // The cache dir does not exist yet: free space is read at the nearest existing parent.
  EXPECT_EQ(p.cache_dir, "/var/cache/keel");
  EXPECT_EQ(p.cache_dir_probed, "/var/cache");
  EXPECT_EQ(p.cache_dir_free_bytes, 500ull << 30);
}

TEST(Platform, DriverVersionFromProcWhenNvmlIsMissing) {
  FakeProbeSource source(testdata("platform/linux-h100"));
  Platform p = probe_platform(source, "");
  EXPECT_EQ(p.nvidia.driver_version, "535.183.01");
  EXPECT_EQ(p.nvidia.status, "kernel module loaded, NVML not available");
  EXPECT_TRUE(p.nvidia.gpus.empty());
}

TEST(Platform, EverythingMissingIsUnknownNotACrash) {
  FakeProbeSource source(testdata("platform/linux-bare"));
  source.uname_fails = true;
  source.memlock_fails = true;
  Platform p = probe_platform(source, "/nonexistent/cache");
  EXPECT_EQ(p.os, kUnknown);
  EXPECT_EQ(p.os_name, kUnknown);
  EXPECT_EQ(p.kernel, kUnknown);
  EXPECT_EQ(p.cpu_model, kUnknown);
  EXPECT_FALSE(p.cpu_logical_cores.has_value());
  EXPECT_FALSE(p.ram_total_bytes.has_value());
  EXPECT_EQ(p.transparent_hugepages, kUnknown);
  EXPECT_EQ(p.overcommit, kUnknown);
  EXPECT_EQ(p.memlock_limit, kUnknown);
  EXPECT_EQ(p.nvidia.status, "no NVIDIA driver");
  EXPECT_EQ(p.nvidia.driver_version, kUnknown);
  EXPECT_FALSE(p.cache_dir_free_bytes.has_value());

  auto j = platform_to_json(p);
  EXPECT_EQ(j["ram_total_bytes"], "unknown");
  EXPECT_EQ(j["cpu_logical_cores"], "unknown");
  EXPECT_EQ(j["nvidia"]["status"], "no NVIDIA driver");
}

TEST(Platform, UnlimitedMemlock) {
  FakeProbeSource source(testdata("platform/linux-bare"));
  source.memlock = std::nullopt;
  Platform p = probe_platform(source, "");
  EXPECT_EQ(p.memlock_limit, "unlimited");
  EXPECT_FALSE(p.memlock_limit_bytes.has_value());
}

TEST(Platform, GarbageInProcFilesIsUnknown) {
  // linux-bare has no files; an overcommit value outside 0..2 is shown as the number.
  FakeProbeSource source(testdata("platform/linux-bare"));
  Platform p = probe_platform(source, "");
  EXPECT_EQ(p.transparent_hugepages, kUnknown);
}

TEST(Platform, ReadsMacOSFromCommandsAndTheKextPlist) {
  FakeProbeSource source(testdata("platform/macos-m3"));
  source.uname_value = {"Darwin", "25.4.0", "arm64"};
  source.commands[{"sw_vers", "-productVersion"}] = "26.4.1\n";
  source.commands[{"sw_vers", "-buildVersion"}] = "25E253\n";
  source.commands[{"sysctl", "-n", "machdep.cpu.brand_string"}] = "Apple M3 Ultra\n";
  source.commands[{"sysctl", "-n", "hw.logicalcpu"}] = "32\n";
  source.commands[{"sysctl", "-n", "hw.memsize"}] = "274877906944\n";
  source.memlock = std::nullopt;
  Platform p = probe_platform(source, "");
  EXPECT_EQ(p.os, "macos");
  EXPECT_EQ(p.os_name, "macOS 26.4.1");
  EXPECT_EQ(p.kernel, "25.4.0");
  EXPECT_EQ(p.macos_product_version, "26.4.1");
  EXPECT_EQ(p.macos_build, "25E253");
  EXPECT_EQ(p.iogpu_kext_version, "130.13");
  EXPECT_EQ(p.cpu_model, "Apple M3 Ultra");
  EXPECT_EQ(p.cpu_logical_cores, 32);
  EXPECT_EQ(p.ram_total_bytes, 256ull << 30);
  EXPECT_EQ(p.nvidia.status, "no NVIDIA driver");
  EXPECT_EQ(p.transparent_hugepages, "n/a (macOS)");

  auto j = platform_to_json(p);
  EXPECT_EQ(j["macos"]["product_version"], "26.4.1");
  EXPECT_EQ(j["macos"]["iogpu_kext_version"], "130.13");
}

TEST(Platform, MacOSWithoutCommandsOrKextIsUnknown) {
  FakeProbeSource source(testdata("platform/linux-bare"));
  source.uname_value = {"Darwin", "24.6.0", "arm64"};
  Platform p = probe_platform(source, "");
  EXPECT_EQ(p.os, "macos");
  EXPECT_EQ(p.macos_product_version, kUnknown);
  EXPECT_EQ(p.iogpu_kext_version, kUnknown);
  EXPECT_EQ(p.os_name, kUnknown);
}

TEST(Platform, JsonHasTheGpuFields) {
  FakeProbeSource source(testdata("platform/linux-h100"));
  source.nvidia_value = h100_driver();
  auto j = platform_to_json(probe_platform(source, ""));
  ASSERT_EQ(j["nvidia"]["gpus"].size(), 1u);
  const auto& gpu = j["nvidia"]["gpus"][0];
  EXPECT_EQ(gpu["name"], "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(gpu["memory_total_bytes"], 85520809984ull);
  EXPECT_EQ(gpu["ecc_mode"], "enabled");
  EXPECT_EQ(gpu["persistence_mode"], "enabled");
  EXPECT_EQ(j["nvidia"]["cuda_driver_version"], "13.0");
  EXPECT_FALSE(j.contains("macos"));
}

TEST(Platform, HostProbeOfThisMachineDoesNotCrash) {
  auto source = host_probe_source(env::Env::posix());
  Platform p = probe_platform(*source, "/tmp");
  EXPECT_NE(p.os, "");
  EXPECT_TRUE(p.cache_dir_free_bytes.has_value());
}

}  // namespace
}  // namespace keel::doctor
