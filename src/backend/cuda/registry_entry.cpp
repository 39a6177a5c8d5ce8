// The CUDA backend's entry in the backend registry (backend/registry.h), linked when CUDA is built. Plain C++:
// it calls the backend's own entry points (cuda_backend.h, cuda_bench.h, nccl_communicator.h).
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_bench.h"
#include "backend/cuda/nccl_communicator.h"
#include "backend/registry.h"

namespace keel::backend {

std::vector<BackendKind> device_kinds() {
  BackendKind k;
  k.name = "cuda";
  k.device = true;
  k.device_count = [] { return cuda_device_count(); };
  k.create = [](int device) { return make_cuda_backend(device); };
  k.memory = [](int device) -> Result<DeviceMemory> {
    KEEL_ASSIGN_OR_RETURN(CudaMemoryInfo info, cuda_memory_info(device));
    return DeviceMemory{info.name, info.total_bytes, info.free_bytes};
  };
  k.join_group = [](dist::Communicator* control, Backend* backend,
                    std::chrono::milliseconds timeout) -> Result<DeviceGroup> {
    KEEL_ASSIGN_OR_RETURN(std::unique_ptr<NcclCommunicator> nccl, NcclCommunicator::create(control, backend, timeout));
    DeviceGroup group;
    group.device_bytes = nccl->device_bytes();
    group.version = nccl->version();
    group.communicator = std::move(nccl);
    return group;
  };
  k.read_bandwidth = [](int device) { return cuda_hbm_read_bandwidth(device); };
  k.gemm_flops = [](int device, int n) { return cuda_gemm_flops(device, n); };
  return {std::move(k)};
}

}  // namespace keel::backend
