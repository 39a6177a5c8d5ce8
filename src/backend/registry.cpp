#include "backend/registry.h"

namespace keel::backend {

namespace {

// Device kinds a binary may have been built without: asking for one says so instead of "unknown".
struct KnownKind {
  const char* name;
  const char* what;      // for the message
  const char* compiler;  // whose absence at build time leaves it out
};
constexpr KnownKind kKnownDeviceKinds[] = {{"cuda", "CUDA", "nvcc"}};

BackendKind cpu_kind() {
  BackendKind k;
  k.name = "cpu";
  k.device_count = [] { return 0; };
  k.create = [](int) -> Result<std::unique_ptr<Backend>> { return make_cpu_backend(); };
  return k;
}

std::vector<BackendKind> all_kinds() {
  std::vector<BackendKind> all{cpu_kind()};
  for (BackendKind& k : device_kinds()) all.push_back(std::move(k));
  return all;
}

}  // namespace

const std::vector<BackendKind>& kinds() {
  static const std::vector<BackendKind> all = all_kinds();
  return all;
}

Result<const BackendKind*> resolve(const std::string& name) {
  const std::vector<BackendKind>& all = kinds();
  if (name == "auto") {
    for (const BackendKind& k : all)
      if (k.device && k.device_count() > 0) return &k;
    return &all.front();
  }
  for (const BackendKind& k : all)
    if (k.name == name) return &k;
  for (const KnownKind& known : kKnownDeviceKinds)
    if (name == known.name)
      return unsupported("--backend {}: this keel was built without {} (no {} at build time)", name, known.what,
                         known.compiler);
  return invalid_argument("--backend {}: expected auto, cpu or cuda", name);
}

Result<std::unique_ptr<Backend>> create(const std::string& name) {
  KEEL_ASSIGN_OR_RETURN(const BackendKind* kind, resolve(name));
  return kind->create(0);
}

bool wants_device(const std::string& name) {
  for (const KnownKind& known : kKnownDeviceKinds)
    if (name == known.name) return true;
  auto kind = resolve(name);
  return kind.ok() && (*kind)->device;
}

int device_count(const std::string& name) {
  auto kind = resolve(name);
  return kind.ok() ? (*kind)->device_count() : 0;
}

Result<std::optional<DeviceMemory>> device_memory(const Backend& backend) {
  for (const BackendKind& k : kinds()) {
    if (k.name != backend.name()) continue;
    if (!k.memory) return std::optional<DeviceMemory>();
    KEEL_ASSIGN_OR_RETURN(DeviceMemory memory, k.memory(0));
    return std::optional<DeviceMemory>(std::move(memory));
  }
  return not_found("memory plan: backend {} is not one this keel was built with", backend.name());
}

}  // namespace keel::backend
