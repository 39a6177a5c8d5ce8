// ThreadGroup: N tensor-parallel ranks as threads of one process, communicating through shared memory. The
// all-reduce sums in rank order 0..N-1 for every element, so results are reproducible run to run and identical
// on every rank. Used to test the sharding logic on CPU; the GPU path uses NCCL behind the same interface.
#pragma once

#include <barrier>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <functional>
#include <memory>
#include <vector>

#include "dist/communicator.h"

namespace keel::dist {

class ThreadGroup {
 public:
  explicit ThreadGroup(int size);
  ~ThreadGroup();
  ThreadGroup(const ThreadGroup&) = delete;
  ThreadGroup& operator=(const ThreadGroup&) = delete;

  int size() const { return size_; }
  // Rank r's communicator; each may be used by one thread only.
  Communicator& rank(int r);

  // Runs fn(communicator) on `size` threads, one per rank, and returns each rank's status (index = rank).
  std::vector<Status> run(const std::function<Status(Communicator&)>& fn);

 private:
  friend class ThreadCommunicator;
  struct Slot {
    float* data = nullptr;
    const float* send = nullptr;
    size_t n = 0;
  };
  // One queue per (from, to) pair for send/recv.
  struct Mailbox {
    std::mutex mu;
    std::condition_variable arrived;
    std::map<std::pair<int, int>, std::deque<std::vector<float>>> queues;
  };

  int size_;
  std::barrier<> barrier_;
  std::vector<Slot> slots_;
  Mailbox mail_;
  std::vector<float> sum_;  // all-reduce result, written in chunks by every rank
  std::vector<std::unique_ptr<Communicator>> ranks_;
};

}  // namespace keel::dist
