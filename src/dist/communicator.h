// dist::Communicator — the collectives a tensor-parallel forward pass needs, behind one interface.
//
// The model calls these at fixed points of every forward (docs/DISTRIBUTED.md lists them); every rank calls the
// same collectives in the same order with the same sizes. ThreadCommunicator runs N ranks as threads of one
// process (the CPU tests); TcpCommunicator runs them as processes (the CPU launcher, and every group's control
// plane); NcclCommunicator (backend/cuda/nccl_communicator.h), one process per GPU, adds device collectives.
// The host calls take host float32 buffers; where on_device() is true the model uses the *_device calls on its
// device tensors instead, so activations never leave the GPU.
#pragma once

#include <cstddef>

#include "base/dtype.h"
#include "base/status.h"

namespace keel::dist {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // data[i] = sum over ranks of data[i], the same bits on every rank.
  virtual Status all_reduce_sum(float* data, size_t n) = 0;
  // recv[r*n .. r*n+n) = rank r's send[0..n); recv holds size()*n floats.
  virtual Status all_gather(const float* send, size_t n, float* recv) = 0;
  virtual Status barrier() = 0;
  // data[0..n) of rank `root` copied to every rank's data (rank 0's step plan to its followers). Every rank
  // passes the same n.
  virtual Status broadcast(void* data, size_t n, int root) = 0;
  // Point to point, for pipeline stages: send returns once the data is handed off (the caller may reuse it);
  // recv blocks until `n` floats from `peer` arrive. Messages between two ranks arrive in the order sent.
  virtual Status send(const float* data, size_t n, int peer) = 0;
  virtual Status recv(float* data, size_t n, int peer) = 0;

  // --- Device collectives (NCCL): queued on the backend's stream, on `n` elements of `dtype` in device memory,
  // capturable into a CUDA graph. Only where on_device() is true.
  virtual bool on_device() const { return false; }
  virtual Status all_reduce_sum_device(void* data, size_t n, DType dtype) {
    return unsupported("this communicator has no device collectives");
  }
  // recv[r*n .. r*n+n) = rank r's send[0..n).
  virtual Status all_gather_device(const void* send, size_t n, DType dtype, void* recv) {
    return unsupported("this communicator has no device collectives");
  }
  // Waits until the device collectives queued so far are done. Fails instead of hanging when a peer died, a
  // collective reported an error, or the step timeout passed; the communicator is then unusable.
  virtual Status synchronize() { return Status(); }
};

}  // namespace keel::dist
