// TcpCommunicator: N ranks as processes (one host or several), connected by TCP. Rank 0 listens on the master
// port; the others connect to it (retrying until connect_timeout), report their own listening port, receive
// everyone's, and connect to each other, so every pair of ranks shares one socket.
//
// It is the control plane of every multi-process group: the step plans rank 0 broadcasts, barriers, the NCCL
// unique id. On the CPU backend it is also the data plane (all-reduce through rank 0, which sums in rank order
// 0..N-1 like ThreadGroup, so results are bit-identical on every rank and to the thread ranks).
//
// Failures are values: a peer that exits closes its sockets and the next call that touches it fails with
// "rank r closed its connection"; a peer that stops answering fails a collective after `timeout`. A broadcast
// waits for its root without a timeout (followers idle between steps) but still sees the root exit. After a
// failure every call fails with the first error.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "dist/communicator.h"

namespace keel::dist {

struct TcpOptions {
  int rank = 0;
  int world = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 0;
  std::chrono::milliseconds connect_timeout{120000};  // ranks start seconds apart (model loading, CUDA init)
  std::chrono::milliseconds timeout{60000};           // one collective; 0: none
};

class TcpCommunicator final : public Communicator {
 public:
  // Blocks until all `world` ranks are connected.
  static Result<std::unique_ptr<TcpCommunicator>> connect(const TcpOptions& options);
  ~TcpCommunicator() override;

  int rank() const override { return rank_; }
  int size() const override { return world_; }
  Status all_reduce_sum(float* data, size_t n) override;
  Status all_gather(const float* send, size_t n, float* recv) override;
  Status barrier() override;
  // A barrier with its own timeout (0: none): "every rank has loaded its shard", which takes as long as it takes.
  Status barrier_within(std::chrono::milliseconds timeout);
  Status broadcast(void* data, size_t n, int root) override;
  Status send(const float* data, size_t n, int peer) override;
  Status recv(float* data, size_t n, int peer) override;

  // Without blocking: fails when a peer's connection has closed (it exited). NcclCommunicator polls this while
  // it waits for a collective, since NCCL itself may spin forever on a dead peer.
  Status check_peers();
  // Marks the group failed (every later call returns `why`) and closes the sockets, so that peers blocked on
  // this rank see it at once.
  void abort(const Status& why);
  // Where `rank` can be reached: the master address for rank 0, else its address as rank 0 saw it. A sub-group
  // led by that rank listens there (cli/launcher.cpp's TP x PP groups, which may span hosts).
  const std::string& address(int rank) const { return addrs_[rank]; }

 private:
  TcpCommunicator(int rank, int world, std::chrono::milliseconds timeout);
  enum class Tag : uint32_t;
  Status send_msg(int peer, Tag tag, const void* data, size_t bytes);
  // `timed`: false waits for ever (a broadcast's followers).
  Status recv_msg(int peer, Tag tag, void* data, size_t bytes, bool timed = true);
  Status fail(Status s);

  int rank_, world_;
  std::chrono::milliseconds timeout_;
  std::vector<int> socks_;  // per peer; -1 for this rank
  std::vector<std::string> addrs_;  // per rank: address()
  Status failed_;
  std::vector<float> sum_;  // rank 0's receive buffer for the all-reduce
};

// A TCP port that is free on this host now, picked by the kernel (another process may take it before it is
// bound again): the launcher's master port, and the tests' servers.
int free_port();

}  // namespace keel::dist
