// dist::Communicator — the collectives a tensor-parallel forward pass needs, behind one interface.
//
// The model calls these at fixed points of every forward (docs/DISTRIBUTED.md lists them); every rank calls the
// same collectives in the same order with the same sizes. ThreadCommunicator runs N ranks as threads of one
// process (the CPU tests); a NcclCommunicator, one process per GPU, implements the same interface.
// Buffers are host float32: a backend whose tensors are not host memory stages through copy_to_host.
#pragma once

#include <cstddef>

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
};

}  // namespace keel::dist
