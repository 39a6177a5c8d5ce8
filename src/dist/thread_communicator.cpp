#include "dist/thread_communicator.h"

#include <algorithm>
#include <cstring>
#include <thread>

namespace keel::dist {

class ThreadCommunicator final : public Communicator {
 public:
  ThreadCommunicator(ThreadGroup* group, int rank) : g_(group), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return g_->size_; }

  Status all_reduce_sum(float* data, size_t n) override {
    g_->slots_[rank_] = ThreadGroup::Slot{data, nullptr, n};
    if (rank_ == 0 && g_->sum_.size() < n) g_->sum_.resize(n);
    g_->barrier_.arrive_and_wait();
    KEEL_RETURN_IF_ERROR(check_sizes("all_reduce_sum", n));
    // Rank r sums its chunk of the elements over all ranks, always in rank order: the result does not depend on
    // thread timing.
    const int R = g_->size_;
    const size_t begin = n * rank_ / R, end = n * (rank_ + 1) / R;
    float* sum = g_->sum_.data();
    for (size_t i = begin; i < end; i++) {
      float s = g_->slots_[0].data[i];
      for (int r = 1; r < R; r++) s += g_->slots_[r].data[i];
      sum[i] = s;
    }
    g_->barrier_.arrive_and_wait();
    std::memcpy(data, sum, n * sizeof(float));
    // Nobody reuses sum_ or the slots until every rank has its copy.
    g_->barrier_.arrive_and_wait();
    return Status();
  }

  Status all_gather(const float* send, size_t n, float* recv) override {
    g_->slots_[rank_] = ThreadGroup::Slot{nullptr, send, n};
    g_->barrier_.arrive_and_wait();
    KEEL_RETURN_IF_ERROR(check_sizes("all_gather", n));
    for (int r = 0; r < g_->size_; r++) std::memcpy(recv + r * n, g_->slots_[r].send, n * sizeof(float));
    g_->barrier_.arrive_and_wait();
    return Status();
  }

  Status barrier() override {
    g_->barrier_.arrive_and_wait();
    return Status();
  }

  Status broadcast(void* data, size_t n, int root) override {
    if (root < 0 || root >= g_->size_) return invalid_argument("broadcast: root {} of {} ranks", root, g_->size_);
    g_->slots_[rank_] = ThreadGroup::Slot{static_cast<float*>(data), nullptr, n};
    g_->barrier_.arrive_and_wait();
    KEEL_RETURN_IF_ERROR(check_sizes("broadcast", n));
    if (rank_ != root) std::memcpy(data, g_->slots_[root].data, n);
    g_->barrier_.arrive_and_wait();
    return Status();
  }

  Status send(const float* data, size_t n, int peer) override {
    KEEL_RETURN_IF_ERROR(check_peer("send", peer));
    auto& m = g_->mail_;
    {
      std::lock_guard lock(m.mu);
      m.queues[{rank_, peer}].emplace_back(data, data + n);
    }
    m.arrived.notify_all();
    return Status();
  }

  Status recv(float* data, size_t n, int peer) override {
    KEEL_RETURN_IF_ERROR(check_peer("recv", peer));
    auto& m = g_->mail_;
    std::unique_lock lock(m.mu);
    auto& q = m.queues[{peer, rank_}];
    m.arrived.wait(lock, [&] { return !q.empty(); });
    std::vector<float> msg = std::move(q.front());
    q.pop_front();
    if (msg.size() != n)
      return internal_error("recv: rank {} expected {} floats from rank {}, got {}", rank_, n, peer, msg.size());
    std::memcpy(data, msg.data(), n * sizeof(float));
    return Status();
  }

 private:
  // Every rank sees the same slots, so a mismatch fails on all of them alike (after the trailing barrier, so no
  // rank is left waiting).
  Status check_sizes(const char* op, size_t n) {
    for (int r = 0; r < g_->size_; r++) {
      if (g_->slots_[r].n == n) continue;
      const size_t other = g_->slots_[r].n;
      g_->barrier_.arrive_and_wait();
      return internal_error("{}: rank {} passed {} elements, rank {} passed {}", op, rank_, n, r, other);
    }
    return Status();
  }

  Status check_peer(const char* op, int peer) const {
    if (peer < 0 || peer >= g_->size_ || peer == rank_)
      return invalid_argument("{}: rank {} cannot address peer {} of {} ranks", op, rank_, peer, g_->size_);
    return Status();
  }

  ThreadGroup* g_;
  int rank_;
};

ThreadGroup::ThreadGroup(int size) : size_(size), barrier_(size), slots_(size) {
  for (int r = 0; r < size; r++) ranks_.push_back(std::make_unique<ThreadCommunicator>(this, r));
}

ThreadGroup::~ThreadGroup() = default;

Communicator& ThreadGroup::rank(int r) { return *ranks_.at(r); }

std::vector<Status> ThreadGroup::run(const std::function<Status(Communicator&)>& fn) {
  std::vector<Status> status(size_);
  std::vector<std::thread> threads;
  for (int r = 0; r < size_; r++) threads.emplace_back([&, r] { status[r] = fn(*ranks_[r]); });
  for (auto& t : threads) t.join();
  return status;
}

}  // namespace keel::dist
