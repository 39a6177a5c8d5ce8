// NcclCommunicator: a tensor-parallel rank on one GPU. Device collectives (all-reduce, all-gather) run through
// NCCL on the CUDA backend's stream, in place on device memory and capturable into the decode graphs; the host
// calls (step-plan broadcasts, barriers, host all-reduce) go to the `control` communicator, which also carried
// the NCCL unique id from rank 0 at creation.
//
// Failures: synchronize() waits for the stream by polling, and between polls checks NCCL's asynchronous error,
// the control links (a rank that exited closed them: TcpCommunicator::check_peers) and the step timeout; any of
// them aborts the NCCL communicator (ncclCommAbort, which also ends kernels spinning on a dead peer) and the
// control links, so the peers fail at once too. No CUDA or NCCL type appears here.
#pragma once

#include <chrono>
#include <memory>

#include "backend/ops.h"
#include "dist/communicator.h"

namespace keel::backend {

class NcclCommunicator final : public dist::Communicator {
 public:
  // Collective over control's ranks: blocks until every rank has called it. `backend` must be a CUDA backend
  // (its device and stream are used); `control` outlives this. NVLink multicast (NVLS) stays off.
  static Result<std::unique_ptr<NcclCommunicator>> create(dist::Communicator* control, Backend* backend,
                                                          std::chrono::milliseconds timeout);
  ~NcclCommunicator() override;

  int rank() const override;
  int size() const override;
  Status all_reduce_sum(float* data, size_t n) override;
  Status all_gather(const float* send, size_t n, float* recv) override;
  Status barrier() override;
  Status broadcast(void* data, size_t n, int root) override;
  Status send(const float* data, size_t n, int peer) override;
  Status recv(float* data, size_t n, int peer) override;

  bool on_device() const override { return true; }
  Status all_reduce_sum_device(void* data, size_t n, DType dtype) override;
  Status all_gather_device(const void* send, size_t n, DType dtype, void* recv) override;
  Status synchronize() override;

  // Fails the group now (ncclCommAbort, control links closed): what a rank that must leave does, so that its
  // peers fail at once instead of waiting on it.
  void abort(const Status& why);

  // Device memory NCCL took at creation (its buffers and channels; all connections are made then), for the
  // memory plan.
  uint64_t device_bytes() const;
  // "NCCL 2.28.9".
  std::string version() const;

  struct Impl;

 private:
  explicit NcclCommunicator(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace keel::backend
