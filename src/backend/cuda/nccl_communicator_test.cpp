// NCCL's collectives on two GPUs, ranks as threads of this process (control plane: a ThreadGroup or TCP): device
// all-reduce and all-gather are exact, and a rank that goes away fails the other instead of hanging it. Skips
// with fewer than two GPUs.
//
// Models and the engine at TP=2 are tested as the product runs them, one process per GPU: keel logits, generate
// and serve with --backend cuda --tensor-parallel 2 in keel_e2e_test (tests/parallel_cli_test.cpp, Cuda/*, and
// ServeTensorParallel.Cuda*). Their in-process versions here (two engine threads, decode graphs with NCCL
// captured) hung on 2xH100: NCCL's documentation warns that several GPUs per process with CUDA graph capture may
// deadlock (cudaGraphLaunch can block) and recommends one GPU per process.
#include "backend/cuda/nccl_communicator.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <thread>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "dist/tcp_communicator.h"
#include "dist/thread_communicator.h"

namespace keel::backend {
namespace {

#define REQUIRE_TWO_GPUS() \
  if (cuda_device_count() < 2) GTEST_SKIP() << "tensor parallelism on CUDA needs 2 GPUs, " << cuda_device_count() << " visible"

// NCCL's settings, made once before any rank thread starts (setenv is not thread-safe).
void nccl_env() {
  setenv("NCCL_NVLS_ENABLE", "0", 1);
  setenv("NCCL_RUNTIME_CONNECT", "0", 0);
  setenv("NCCL_GRAPH_REGISTER", "0", 0);
}

// Runs fn(rank's communicator, rank's backend) on two threads, rank r on GPU r.
std::vector<Status> on_two_gpus(const std::function<Status(dist::Communicator&, Backend&)>& fn) {
  nccl_env();
  dist::ThreadGroup control(2);
  return control.run([&](dist::Communicator& c) -> Status {
    KEEL_ASSIGN_OR_RETURN(auto backend, make_cuda_backend(c.rank()));
    KEEL_ASSIGN_OR_RETURN(auto nccl, NcclCommunicator::create(&c, backend.get(), std::chrono::seconds(60)));
    if (c.rank() == 0)
      std::printf("[tp] %s, %.0f MiB of device memory for NCCL\n", nccl->version().c_str(),
                  nccl->device_bytes() / 1048576.0);
    return fn(*nccl, *backend);
  });
}

TEST(NcclCommunicator, DeviceAllReduceAndAllGatherAreExactOnBothRanks) {
  REQUIRE_TWO_GPUS();
  auto status = on_two_gpus([](dist::Communicator& c, Backend& b) -> Status {
    const int n = 4096;
    KEEL_ASSIGN_OR_RETURN(Tensor t, b.alloc(DType::kF32, 1, n));
    KEEL_ASSIGN_OR_RETURN(Tensor all, b.alloc(DType::kF32, 2, n));
    std::vector<float> host(n);
    for (int i = 0; i < n; i++) host[i] = static_cast<float>(c.rank() * 1000 + i);
    b.copy_from_host(host.data(), t);
    KEEL_RETURN_IF_ERROR(c.all_gather_device(t.data, n, DType::kF32, all.data));
    KEEL_RETURN_IF_ERROR(c.all_reduce_sum_device(t.data, n, DType::kF32));
    KEEL_RETURN_IF_ERROR(c.synchronize());
    b.copy_to_host(t, host.data());
    for (int i = 0; i < n; i++) EXPECT_EQ(host[i], static_cast<float>(1000 + 2 * i));
    std::vector<float> gathered(2 * n);
    b.copy_to_host(all, gathered.data());
    for (int i = 0; i < 2 * n; i++) EXPECT_EQ(gathered[i], static_cast<float>((i / n) * 1000 + i % n));
    return Status();
  });
  for (auto& s : status) ASSERT_TRUE(s.ok()) << s.message();
}

// A rank process that exits: its control links close and the survivor's step fails within a second (NCCL
// itself would wait on the dead peer for ever).
TEST(NcclTensorParallel, ARankThatExitsFailsTheOthersStepInsteadOfHangingIt) {
  REQUIRE_TWO_GPUS();
  const int port = 29500 + static_cast<int>(::getpid() % 1000);
  nccl_env();
  std::vector<Status> status(2);
  double waited = 0;
  std::vector<std::thread> threads;
  for (int rank = 0; rank < 2; rank++) {
    threads.emplace_back([&, rank] {
      status[rank] = [&]() -> Status {
        dist::TcpOptions o;
        o.rank = rank;
        o.world = 2;
        o.master_port = port;
        KEEL_ASSIGN_OR_RETURN(auto tcp, dist::TcpCommunicator::connect(o));
        KEEL_ASSIGN_OR_RETURN(auto backend, make_cuda_backend(rank));
        KEEL_ASSIGN_OR_RETURN(auto nccl, NcclCommunicator::create(tcp.get(), backend.get(), std::chrono::seconds(30)));
        KEEL_ASSIGN_OR_RETURN(Tensor t, backend->alloc(DType::kF32, 1, 1 << 20));
        KEEL_RETURN_IF_ERROR(nccl->barrier());
        if (rank == 1) {
          nccl->abort(io_error("exiting"));  // what the process's exit does: NCCL gone, sockets closed
          return Status();
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        const auto t0 = std::chrono::steady_clock::now();
        Status s = nccl->all_reduce_sum_device(t.data, 1 << 20, DType::kF32);
        if (s.ok()) s = nccl->synchronize();
        waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (s.ok()) return internal_error("the all-reduce finished without its peer");
        std::printf("[tp] survivor failed after %.3f s: %s\n", waited, s.message().c_str());
        return Status();
      }();
    });
  }
  for (auto& t : threads) t.join();
  for (auto& s : status) EXPECT_TRUE(s.ok()) << s.message();
  EXPECT_LT(waited, 5.0);
}

}  // namespace
}  // namespace keel::backend
