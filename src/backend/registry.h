// The backends this keel was built with, by name: the one place that knows whether CUDA is in the binary.
// cli/ and runtime/ ask here (`--backend auto|cpu|cuda`) instead of testing KEEL_WITH_CUDA.
//
// The CPU kind is always present. Device kinds come from device_kinds(), which the build links from exactly one
// file: backend/cuda/registry_entry.cpp when the CUDA backend is built, backend/registry_cpu_only.cpp otherwise
// (leveldb's env_posix/env_windows pattern: the choice is the build's, the code has no #ifdef).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backend/ops.h"
#include "dist/communicator.h"

namespace keel::backend {

// One memory a device backend allocates in, as its driver reports it now.
struct DeviceMemory {
  std::string name;  // "cuda:0 (NVIDIA H100 80GB HBM3)"
  uint64_t total_bytes = 0;
  uint64_t free_bytes = 0;
};

// Device collectives for a tensor-parallel group, joined over its host control links (NCCL on CUDA).
struct DeviceGroup {
  std::unique_ptr<dist::Communicator> communicator;
  uint64_t device_bytes = 0;  // what the collectives took on the device at creation, for the memory plan
  std::string version;        // "NCCL 2.28.9"
};

struct BackendKind {
  std::string name;  // "cpu", "cuda": what --backend says and Backend::name() returns
  bool device = false;  // weights, KV and activations live in a device's memory, one device per rank
  std::function<int()> device_count;  // devices visible now; 0 with no driver or no device (never fails)
  std::function<Result<std::unique_ptr<Backend>>(int device)> create;
  // Device kinds only (null for the CPU, whose memory is the host's):
  std::function<Result<DeviceMemory>(int device)> memory;
  std::function<Result<DeviceGroup>(dist::Communicator* control, Backend* backend, std::chrono::milliseconds timeout)>
      join_group;  // null: no device collectives (a tensor-parallel group then refuses this backend)
  // The device's own limits, measured in the same run as a benchmark (keel bench's roofline): bytes/s of a
  // streaming read, FLOP/s of an n^3 GEMM in the weights' dtype.
  std::function<Result<double>(int device)> read_bandwidth;
  std::function<Result<double>(int device, int n)> gemm_flops;
};

// Every kind this binary has, the CPU first.
const std::vector<BackendKind>& kinds();

// The kind `name` ("cpu", "cuda" or "auto": the first device kind with a device, else the CPU) stands for. Errors
// name the flag: an unknown name, or a known one this binary was built without.
Result<const BackendKind*> resolve(const std::string& name);

// A backend of kind `name` on its first device.
Result<std::unique_ptr<Backend>> create(const std::string& name);

// Whether `name` asks for a device kind, one device per rank: a device kind's name (also when this binary was
// built without it, so that a layout check can say how many devices it lacks), or "auto" resolving to one.
bool wants_device(const std::string& name);

// Devices of kind `name` visible now (resolved as above; 0 for the CPU or a name that does not resolve).
int device_count(const std::string& name);

// The device memory `backend` allocates in; nullopt for a backend that allocates in host memory.
Result<std::optional<DeviceMemory>> device_memory(const Backend& backend);

// The device kinds linked into this binary (see the top of this file).
std::vector<BackendKind> device_kinds();

}  // namespace keel::backend
