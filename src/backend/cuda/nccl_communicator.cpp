#include "backend/cuda/nccl_communicator.h"

#include <cuda_runtime.h>

#include <cstdlib>
#include <cstring>
#include <thread>

#include "dist/tcp_communicator.h"

#ifdef KEEL_HAVE_NCCL
#include <nccl.h>
#endif

namespace keel::backend {

bool cuda_backend_stream(Backend* backend, int* device, cudaStream_t* stream);  // cuda_backend.cpp

#ifdef KEEL_HAVE_NCCL

namespace {

using Clock = std::chrono::steady_clock;

Result<ncclDataType_t> nccl_type(DType d) {
  switch (d) {
    case DType::kF32: return ncclFloat32;
    case DType::kF16: return ncclFloat16;
    case DType::kBF16: return ncclBfloat16;
  }
  return invalid_argument("NCCL: no type for {}", dtype_name(d));
}

}  // namespace

struct NcclCommunicator::Impl {
  dist::Communicator* control = nullptr;
  dist::TcpCommunicator* links = nullptr;  // control's sockets, when it has them: a peer's exit shows there first
  ncclComm_t comm = nullptr;
  int device = 0;
  cudaStream_t stream = nullptr;
  std::chrono::milliseconds timeout{60000};
  uint64_t device_bytes = 0;
  int version = 0;
  Status failed;

  // The first failure aborts NCCL (kernels waiting on a dead peer return) and the control links.
  Status fail(Status s) {
    if (failed.ok()) {
      failed = s;
      if (comm != nullptr) ncclCommAbort(comm);
      comm = nullptr;
      if (links != nullptr) links->abort(s);
    }
    return failed;
  }

  Status check(ncclResult_t r, const char* what) {
    if (r == ncclSuccess) return Status();
    const char* last = comm != nullptr ? ncclGetLastError(comm) : nullptr;
    return fail(internal_error("NCCL {} on rank {}: {}{}{}", what, control->rank(), ncclGetErrorString(r),
                               last && *last ? ": " : "", last ? last : ""));
  }
};

Result<std::unique_ptr<NcclCommunicator>> NcclCommunicator::create(dist::Communicator* control, Backend* backend,
                                                                   std::chrono::milliseconds timeout) {
  auto impl = std::make_unique<Impl>();
  impl->control = control;
  impl->links = dynamic_cast<dist::TcpCommunicator*>(control);
  impl->timeout = timeout;
  if (!cuda_backend_stream(backend, &impl->device, &impl->stream))
    return invalid_argument("NCCL needs the CUDA backend, not {}", backend->name());
  // NVLink multicast (NVLS) stays off on every machine keel runs on; every connection is made at creation, so
  // its memory is known up front and no collective inside a graph capture sets one up.
  // (Only where not so already: setenv races with other threads' getenv, and ranks as threads set them first.)
  auto set = [](const char* name, const char* value, bool force) {
    const char* now = std::getenv(name);
    if (now == nullptr || (force && std::strcmp(now, value) != 0)) setenv(name, value, 1);
  };
  set("NCCL_NVLS_ENABLE", "0", true);
  set("NCCL_RUNTIME_CONNECT", "0", false);
  // Captured collectives use NCCL's own buffers rather than registering the model's (graph registration maps
  // user buffers across processes, which keel's fixed workspaces do not need).
  set("NCCL_GRAPH_REGISTER", "0", false);
  ncclGetVersion(&impl->version);
  if (cudaSetDevice(impl->device) != cudaSuccess) return internal_error("NCCL: cannot select device {}", impl->device);
  size_t free_before = 0, free_after = 0, total = 0;
  cudaMemGetInfo(&free_before, &total);

  ncclUniqueId id{};
  if (control->rank() == 0) {
    if (ncclResult_t r = ncclGetUniqueId(&id); r != ncclSuccess)
      return internal_error("NCCL: cannot create the unique id: {}", ncclGetErrorString(r));
  }
  KEEL_RETURN_IF_ERROR(control->broadcast(&id, sizeof(id), 0).with_context("NCCL unique id"));
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  if (ncclResult_t r = ncclCommInitRankConfig(&impl->comm, control->size(), id, control->rank(), &config);
      r != ncclSuccess)
    return internal_error("NCCL: rank {} of {} cannot join the communicator: {}", control->rank(), control->size(),
                          ncclGetErrorString(r));
  // A first collective on every rank: it must work before the model relies on it.
  void* probe = nullptr;
  if (cudaMalloc(&probe, 256) != cudaSuccess) return internal_error("NCCL: cannot allocate the probe buffer");
  ncclResult_t r = ncclAllReduce(probe, probe, 64, ncclFloat32, ncclSum, impl->comm, impl->stream);
  cudaError_t e = cudaStreamSynchronize(impl->stream);
  cudaFree(probe);
  if (r != ncclSuccess || e != cudaSuccess)
    return internal_error("NCCL: the first all-reduce failed on rank {}: {}", control->rank(),
                          r != ncclSuccess ? ncclGetErrorString(r) : cudaGetErrorString(e));
  cudaMemGetInfo(&free_after, &total);
  impl->device_bytes = free_before > free_after ? free_before - free_after : 0;
  KEEL_RETURN_IF_ERROR(control->barrier());
  return std::unique_ptr<NcclCommunicator>(new NcclCommunicator(std::move(impl)));
}

NcclCommunicator::NcclCommunicator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

// ncclCommAbort rather than ncclCommDestroy: it never waits on a peer, so a rank that leaves early (a failed
// start, a failed group) cannot hang in its destructor; at a clean shutdown nothing is in flight either way.
NcclCommunicator::~NcclCommunicator() {
  if (impl_->comm != nullptr) {
    cudaSetDevice(impl_->device);
    ncclCommAbort(impl_->comm);
  }
}

int NcclCommunicator::rank() const { return impl_->control->rank(); }
int NcclCommunicator::size() const { return impl_->control->size(); }
Status NcclCommunicator::all_reduce_sum(float* data, size_t n) { return impl_->control->all_reduce_sum(data, n); }
Status NcclCommunicator::all_gather(const float* send, size_t n, float* recv) {
  return impl_->control->all_gather(send, n, recv);
}
Status NcclCommunicator::barrier() { return impl_->control->barrier(); }
Status NcclCommunicator::broadcast(void* data, size_t n, int root) { return impl_->control->broadcast(data, n, root); }
Status NcclCommunicator::send(const float* data, size_t n, int peer) { return impl_->control->send(data, n, peer); }
Status NcclCommunicator::recv(float* data, size_t n, int peer) { return impl_->control->recv(data, n, peer); }

Status NcclCommunicator::all_reduce_sum_device(void* data, size_t n, DType dtype) {
  if (!impl_->failed.ok()) return impl_->failed;
  KEEL_ASSIGN_OR_RETURN(ncclDataType_t t, nccl_type(dtype));
  return impl_->check(ncclAllReduce(data, data, n, t, ncclSum, impl_->comm, impl_->stream), "all-reduce");
}

Status NcclCommunicator::all_gather_device(const void* send, size_t n, DType dtype, void* recv) {
  if (!impl_->failed.ok()) return impl_->failed;
  KEEL_ASSIGN_OR_RETURN(ncclDataType_t t, nccl_type(dtype));
  return impl_->check(ncclAllGather(send, recv, n, t, impl_->comm, impl_->stream), "all-gather");
}

Status NcclCommunicator::synchronize() {
  Impl& m = *impl_;
  if (!m.failed.ok()) return m.failed;
  const auto start = Clock::now();
  for (int spin = 0;; spin++) {
    const cudaError_t e = cudaStreamQuery(m.stream);
    if (e == cudaSuccess) return Status();
    if (e != cudaErrorNotReady)
      return m.fail(internal_error("rank {}: the device failed during a step: {}", rank(), cudaGetErrorString(e)));
    ncclResult_t async = ncclSuccess;
    ncclCommGetAsyncError(m.comm, &async);
    if (async != ncclSuccess && async != ncclInProgress) KEEL_RETURN_IF_ERROR(m.check(async, "asynchronous error"));
    // Checking the sockets costs a system call per peer: every ~1 ms is enough.
    if (m.links != nullptr && spin % 16 == 15) {
      if (Status s = m.links->check_peers(); !s.ok()) return m.fail(s);
    }
    if (m.timeout.count() > 0 && Clock::now() - start > m.timeout)
      return m.fail(io_error("rank {}: a step's collectives did not finish within {} s (a rank hung?)", rank(),
                             m.timeout.count() / 1000.0));
    if (spin < 200) std::this_thread::yield();
    else std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

void NcclCommunicator::abort(const Status& why) { (void)impl_->fail(why); }

uint64_t NcclCommunicator::device_bytes() const { return impl_->device_bytes; }

std::string NcclCommunicator::version() const {
  const int v = impl_->version;
  return fmt::format("NCCL {}.{}.{}", v / 10000, v / 100 % 100, v % 100);
}

#else  // no NCCL at build time

struct NcclCommunicator::Impl {};

Result<std::unique_ptr<NcclCommunicator>> NcclCommunicator::create(dist::Communicator*, Backend*,
                                                                   std::chrono::milliseconds) {
  return unsupported("tensor parallelism on CUDA needs NCCL, which this keel was built without");
}
NcclCommunicator::NcclCommunicator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
NcclCommunicator::~NcclCommunicator() = default;
int NcclCommunicator::rank() const { return 0; }
int NcclCommunicator::size() const { return 1; }
Status NcclCommunicator::all_reduce_sum(float*, size_t) { return unsupported("no NCCL"); }
Status NcclCommunicator::all_gather(const float*, size_t, float*) { return unsupported("no NCCL"); }
Status NcclCommunicator::barrier() { return unsupported("no NCCL"); }
Status NcclCommunicator::broadcast(void*, size_t, int) { return unsupported("no NCCL"); }
Status NcclCommunicator::send(const float*, size_t, int) { return unsupported("no NCCL"); }
Status NcclCommunicator::recv(float*, size_t, int) { return unsupported("no NCCL"); }
Status NcclCommunicator::all_reduce_sum_device(void*, size_t, DType) { return unsupported("no NCCL"); }
Status NcclCommunicator::all_gather_device(const void*, size_t, DType, void*) { return unsupported("no NCCL"); }
Status NcclCommunicator::synchronize() { return unsupported("no NCCL"); }
void NcclCommunicator::abort(const Status&) {}
uint64_t NcclCommunicator::device_bytes() const { return 0; }
std::string NcclCommunicator::version() const { return "none"; }

#endif

}  // namespace keel::backend
