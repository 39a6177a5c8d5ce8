#include "doctor/nvml.h"

#include <dlfcn.h>

#include <cstring>

namespace keel::doctor {

namespace {

// The few NVML declarations used, from NVML's public API (nvml.h is not needed at build time).
using nvmlReturn_t = int;
using nvmlDevice_t = struct nvmlDevice_st*;
using nvmlEnableState_t = int;
constexpr nvmlReturn_t kSuccess = 0;
constexpr nvmlReturn_t kNotSupported = 3;
constexpr nvmlReturn_t kDriverNotLoaded = 9;

struct nvmlMemory_t {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};

// nvmlPciInfo_t (v3): busIdLegacy[16], domain, bus, device, pciDeviceId, pciSubSystemId, busId[32].
struct nvmlPciInfo_t {
  char bus_id_legacy[16];
  unsigned int domain, bus, device, pci_device_id, pci_subsystem_id;
  char bus_id[32];
  unsigned char reserved[64];  // slack in case a later NVML grows the struct
};

class Nvml {
 public:
  Nvml() {
    handle_ = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (handle_ == nullptr) handle_ = dlopen("libnvidia-ml.so", RTLD_NOW | RTLD_LOCAL);
  }
  ~Nvml() {
    if (handle_ != nullptr) dlclose(handle_);
  }
  bool loaded() const { return handle_ != nullptr; }

  template <typename Fn>
  Fn* get(const char* name) const {
    return handle_ ? reinterpret_cast<Fn*>(dlsym(handle_, name)) : nullptr;
  }

 private:
  void* handle_ = nullptr;
};

std::string enable_state(nvmlReturn_t rc, nvmlEnableState_t state) {
  if (rc == kNotSupported) return "not supported";
  if (rc != kSuccess) return kUnknown;
  return state ? "enabled" : "disabled";
}

}  // namespace

NvidiaInfo probe_nvml() {
  NvidiaInfo info;
  Nvml nvml;
  if (!nvml.loaded()) return info;  // "no NVIDIA driver"

  auto error_string = nvml.get<const char*(nvmlReturn_t)>("nvmlErrorString");
  auto describe = [&](nvmlReturn_t rc) {
    return error_string ? std::string(error_string(rc)) : "NVML error " + std::to_string(rc);
  };
  auto init = nvml.get<nvmlReturn_t()>("nvmlInit_v2");
  auto shutdown = nvml.get<nvmlReturn_t()>("nvmlShutdown");
  if (init == nullptr) {
    info.status = "NVML library without nvmlInit_v2";
    return info;
  }
  if (nvmlReturn_t rc = init(); rc != kSuccess) {
    info.status = rc == kDriverNotLoaded ? "no NVIDIA driver (NVML present, kernel module not loaded)"
                                         : "NVML init failed: " + describe(rc);
    return info;
  }
  info.status = "ok";

  if (auto fn = nvml.get<nvmlReturn_t(char*, unsigned)>("nvmlSystemGetDriverVersion")) {
    char version[96] = {};
    if (fn(version, sizeof(version)) == kSuccess) info.driver_version = version;
  }
  auto cuda_fn = nvml.get<nvmlReturn_t(int*)>("nvmlSystemGetCudaDriverVersion_v2");
  if (cuda_fn == nullptr) cuda_fn = nvml.get<nvmlReturn_t(int*)>("nvmlSystemGetCudaDriverVersion");
  if (cuda_fn != nullptr) {
    int v = 0;
    if (cuda_fn(&v) == kSuccess && v > 0) info.cuda_driver_version = fmt::format("{}.{}", v / 1000, (v % 1000) / 10);
  }

  unsigned count = 0;
  auto count_fn = nvml.get<nvmlReturn_t(unsigned*)>("nvmlDeviceGetCount_v2");
  auto handle_fn = nvml.get<nvmlReturn_t(unsigned, nvmlDevice_t*)>("nvmlDeviceGetHandleByIndex_v2");
  if (count_fn == nullptr || handle_fn == nullptr || count_fn(&count) != kSuccess) count = 0;

  auto name_fn = nvml.get<nvmlReturn_t(nvmlDevice_t, char*, unsigned)>("nvmlDeviceGetName");
  auto uuid_fn = nvml.get<nvmlReturn_t(nvmlDevice_t, char*, unsigned)>("nvmlDeviceGetUUID");
  auto pci_fn = nvml.get<nvmlReturn_t(nvmlDevice_t, nvmlPciInfo_t*)>("nvmlDeviceGetPciInfo_v3");
  auto mem_fn = nvml.get<nvmlReturn_t(nvmlDevice_t, nvmlMemory_t*)>("nvmlDeviceGetMemoryInfo");
  auto cc_fn = nvml.get<nvmlReturn_t(nvmlDevice_t, int*, int*)>("nvmlDeviceGetCudaComputeCapability");
  auto ecc_fn = nvml.get<nvmlReturn_t(nvmlDevice_t, nvmlEnableState_t*, nvmlEnableState_t*)>(
      "nvmlDeviceGetEccMode");
  auto pm_fn = nvml.get<nvmlReturn_t(nvmlDevice_t, nvmlEnableState_t*)>("nvmlDeviceGetPersistenceMode");
  auto rows_fn = nvml.get<nvmlReturn_t(nvmlDevice_t, unsigned*, unsigned*, unsigned*, unsigned*)>(
      "nvmlDeviceGetRemappedRows");

  for (unsigned i = 0; i < count; ++i) {
    nvmlDevice_t dev = nullptr;
    if (handle_fn(i, &dev) != kSuccess) continue;
    GpuInfo gpu;
    gpu.index = static_cast<int>(i);
    char text[128] = {};
    if (name_fn && name_fn(dev, text, sizeof(text)) == kSuccess) gpu.name = text;
    std::memset(text, 0, sizeof(text));
    if (uuid_fn && uuid_fn(dev, text, sizeof(text)) == kSuccess) gpu.uuid = text;
    nvmlPciInfo_t pci {};
    if (pci_fn && pci_fn(dev, &pci) == kSuccess) {
      pci.bus_id[sizeof(pci.bus_id) - 1] = '\0';
      gpu.pci_bus_id = pci.bus_id;
    }
    nvmlMemory_t mem {};
    if (mem_fn && mem_fn(dev, &mem) == kSuccess) {
      gpu.memory_total_bytes = mem.total;
      gpu.memory_free_bytes = mem.free;
    }
    int major = 0, minor = 0;
    if (cc_fn && cc_fn(dev, &major, &minor) == kSuccess) gpu.compute_capability = fmt::format("{}.{}", major, minor);
    if (ecc_fn) {
      nvmlEnableState_t current = 0, pending = 0;
      nvmlReturn_t rc = ecc_fn(dev, &current, &pending);
      gpu.ecc_mode = enable_state(rc, current);
      gpu.ecc_pending = enable_state(rc, pending);
    }
    if (pm_fn) {
      nvmlEnableState_t mode = 0;
      nvmlReturn_t rc = pm_fn(dev, &mode);  // before reading `mode`: argument order is unspecified
      gpu.persistence_mode = enable_state(rc, mode);
    }
    if (rows_fn) {
      unsigned corr = 0, unc = 0, pending = 0, failure = 0;
      nvmlReturn_t rc = rows_fn(dev, &corr, &unc, &pending, &failure);
      if (rc == kSuccess) {
        gpu.remapped_rows = fmt::format("{} correctable, {} uncorrectable, pending: {}, failure: {}", corr, unc,
                                        pending ? "yes" : "no", failure ? "yes" : "no");
      } else if (rc == kNotSupported) {
        gpu.remapped_rows = "not supported";
      }
    }
    info.gpus.push_back(std::move(gpu));
  }
  if (shutdown) shutdown();
  return info;
}

}  // namespace keel::doctor
