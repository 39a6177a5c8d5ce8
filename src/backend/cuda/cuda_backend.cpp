// The CUDA backend: the Backend seam over its parts, all on one stream. Every buffer is allocated at start
// (weights, activations, KV, per-forward scratch sized for the largest batch) or on the first forward (rope
// tables, MoE expert tables): the allocation counter stays flat after warm-up. keel's own kernels (not cuBLAS',
// the MoE or prefill kernels) are launched with programmatic dependent launch (launch.cuh) so that each starts
// while the one before it drains; KEEL_CUDA_PDL=0 launches them plainly (A/B).
//
// The parts, one job each: DeviceArena (every device buffer), DeviceBatch (a forward's batch on the device),
// GemmDispatcher (GEMV or cuBLAS), ElementwiseOps (norms, embedding, element-wise), AttentionKernels (rope, KV
// write, flash prefill, decode attention), MoeKernels, DeviceSampler (token choice), KvBlockCopier (KV blocks to
// and from the host tiers), DecodeGraphs.
#include "backend/cuda/cuda_backend.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "backend/cuda/attention.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/decode_graphs.h"
#include "backend/cuda/device_arena.h"
#include "backend/cuda/device_batch.h"
#include "backend/cuda/device_context.h"
#include "backend/cuda/device_sampler.h"
#include "backend/cuda/elementwise_ops.h"
#include "backend/cuda/gemm_dispatch.h"
#include "backend/cuda/kv_block_copy.h"
#include "backend/cuda/kv_cache.h"
#include "backend/cuda/moe.h"

namespace keel::backend {

namespace {

using namespace keel::backend::cuda;

void from_float_host(const float* src, DType dtype, void* dst, size_t n) {
  if (dtype == DType::kF32) {
    std::memcpy(dst, src, n * sizeof(float));
    return;
  }
  uint16_t* d = static_cast<uint16_t*>(dst);
  for (size_t i = 0; i < n; i++) d[i] = dtype == DType::kBF16 ? float_to_bf16(src[i]) : float_to_f16(src[i]);
}

// The compute stream, destroyed after everything that queues work on it.
struct OwnedStream {
  cudaStream_t stream = nullptr;
  ~OwnedStream() {
    if (stream) cudaStreamDestroy(stream);
  }
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device) { ctx_.device = device; }
  // The parts go in the reverse of their declaration: graphs and copies first, the buffers, then the stream.
  ~CudaBackend() override { cudaSetDevice(ctx_.device); }

  Status init() {
    KEEL_CUDA_RETURN(cudaSetDevice(ctx_.device), "set device");
    KEEL_CUDA_RETURN(cudaStreamCreateWithFlags(&stream_.stream, cudaStreamNonBlocking), "create stream");
    ctx_.stream = stream_.stream;
    cudaDeviceProp prop{};
    KEEL_CUDA_RETURN(cudaGetDeviceProperties(&prop, ctx_.device), "read device properties");
    ctx_.sm_count = prop.multiProcessorCount;
    // PDL needs sm_90; older GPUs would ignore the attribute, but the launches stay plain there.
    ctx_.pdl = env_on("KEEL_CUDA_PDL") && prop.major >= 9;
    return gemm_.init();
  }

  std::string name() const override { return "cuda"; }
  int device() const { return ctx_.device; }
  cudaStream_t stream() const { return ctx_.stream; }
  void set_weights_dtype(DType weights) override { ctx_.act = weights; }
  DType act_dtype() const override { return ctx_.act; }
  DType kv_dtype() const override { return ctx_.act; }

  // --- Memory.
  Status reserve_weights(uint64_t bytes) override { return memory_.reserve_weights(bytes); }

  Result<Tensor> weight(DType dtype, int64_t rows, int64_t cols, const void* host) override {
    const DType act = ctx_.act;
    const size_t n = static_cast<size_t>(rows * cols);
    KEEL_ASSIGN_OR_RETURN(void* d, memory_.place_weight(n * dtype_size(act)));
    if (dtype == act) {
      KEEL_CUDA_RETURN(cudaMemcpy(d, host, n * dtype_size(dtype), cudaMemcpyHostToDevice), "upload weight");
    } else {
      // Convert on the host in chunks: to float, then to the compute dtype.
      const size_t chunk = 1 << 20;
      std::vector<float> f(std::min(n, chunk));
      std::vector<uint8_t> staged(std::min(n, chunk) * dtype_size(act));
      for (size_t off = 0; off < n; off += chunk) {
        const size_t m = std::min(chunk, n - off);
        to_float(dtype, static_cast<const uint8_t*>(host) + off * dtype_size(dtype), f.data(), m);
        from_float_host(f.data(), act, staged.data(), m);
        KEEL_CUDA_RETURN(cudaMemcpy(static_cast<uint8_t*>(d) + off * dtype_size(act), staged.data(),
                                    m * dtype_size(act), cudaMemcpyHostToDevice),
                         "upload weight");
      }
    }
    return Tensor{d, act, rows, cols};
  }

  Result<Tensor> alloc(DType dtype, int64_t rows, int64_t cols) override {
    KEEL_ASSIGN_OR_RETURN(void* d, memory_.alloc(static_cast<size_t>(rows * cols) * dtype_size(dtype)));
    KEEL_CUDA_RETURN(cudaMemset(d, 0, static_cast<size_t>(rows * cols) * dtype_size(dtype)), "clear buffer");
    return Tensor{d, dtype, rows, cols};
  }

  Status alloc_kv(const KvLayout& layout) override { return kv_.alloc(layout, ctx_.act, memory_); }
  const KvLayout& kv_layout() const override { return kv_.layout; }

  void copy_to_host(const Tensor& src, float* dst) override {
    if (src.dtype == DType::kF32) {
      KEEL_CUDA_CHECK(cudaMemcpyAsync(dst, src.data, src.nbytes(), cudaMemcpyDeviceToHost, ctx_.stream));
      KEEL_CUDA_CHECK(cudaStreamSynchronize(ctx_.stream));
      return;
    }
    std::vector<uint8_t> raw(src.nbytes());
    KEEL_CUDA_CHECK(cudaMemcpyAsync(raw.data(), src.data, src.nbytes(), cudaMemcpyDeviceToHost, ctx_.stream));
    KEEL_CUDA_CHECK(cudaStreamSynchronize(ctx_.stream));
    to_float(src.dtype, raw.data(), dst, src.numel());
  }

  void copy_from_host(const float* src, Tensor& dst) override {
    std::vector<uint8_t> staged(dst.nbytes());
    from_float_host(src, dst.dtype, staged.data(), dst.numel());
    KEEL_CUDA_CHECK(cudaMemcpyAsync(dst.data, staged.data(), dst.nbytes(), cudaMemcpyHostToDevice, ctx_.stream));
    KEEL_CUDA_CHECK(cudaStreamSynchronize(ctx_.stream));
  }

  void copy_kv_block_to_host(int block, void* dst) override { kv_copies_.to_host(block, dst); }
  void copy_kv_block_from_host(const void* src, int block) override { kv_copies_.from_host(src, block); }

  uint64_t bytes_allocated() const override { return memory_.bytes(); }
  uint64_t allocations() const override { return memory_.allocations(); }

  // --- A forward.
  Status reserve_forward(const ForwardLimits& limits) override {
    batch_.reserve(limits);
    sampler_.reserve(limits);
    KEEL_RETURN_IF_ERROR(attention_.reserve(limits));
    gemm_.reserve(limits);
    moe_.reserve(limits);
    return Status();
  }

  void begin_forward(const BatchMeta& batch, const std::vector<int32_t>& tokens,
                     const std::vector<int32_t>& logit_rows) override {
    batch_.upload(batch, tokens, logit_rows);
    attention_.begin_forward();
  }

  bool supports_graphs() const override { return true; }
  bool replay(uint64_t key) override { return graphs_.replay(key); }
  void begin_capture() override { graphs_.begin_capture(); }
  Status end_capture(uint64_t key) override { return graphs_.end_capture(key); }

  void synchronize() override { KEEL_CUDA_CHECK(cudaStreamSynchronize(ctx_.stream)); }

  // --- Ops. The token ids and kept rows were uploaded by begin_forward.
  void embed(const Tensor& table, const int32_t* tokens, int n, float scale, Tensor& out) override {
    elementwise_.embed(table, n, scale, out);
  }
  void rms_norm(const Tensor& x, const Tensor& w, float eps, bool add_one, Tensor& out) override {
    elementwise_.rms_norm(x, w, eps, add_one, out);
  }
  void add_rms_norm(Tensor& x, const Tensor& delta, const Tensor& w, float eps, bool add_one, Tensor& out) override {
    elementwise_.add_rms_norm(x, delta, w, eps, add_one, out);
  }
  void add(const Tensor& a, const Tensor& b, Tensor& out) override { elementwise_.add(a, b, out); }
  void glu(const Tensor& gate, const Tensor& up, GluActivation act, Tensor& out) override {
    elementwise_.glu(gate, up, act, out);
  }
  void softcap(Tensor& x, float cap) override { elementwise_.softcap(x, cap); }
  void gather_rows(const Tensor& x, const std::vector<int32_t>& rows, Tensor& out) override {
    elementwise_.gather_rows(x, static_cast<int>(rows.size()), out);
  }

  void gemm(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out) override { gemm_.gemm(x, w, bias, out); }
  void gemm_many(const Tensor& x, const Projection* p, int n) override {
    if (!gemm_.gemm_many(x, p, n)) Backend::gemm_many(x, p, n);
  }
  void gemm_glu(const Tensor& x, const Tensor& gate, const Tensor& up, GluActivation act, Tensor& gate_out,
                Tensor& up_out, Tensor& out) override {
    if (!gemm_.gemm_glu(x, gate, up, act, out)) Backend::gemm_glu(x, gate, up, act, gate_out, up_out, out);
  }

  void rope(Tensor& x, int head_dim, int rotary_dim, const BatchMeta& batch, int first_row,
            const RopeTable& table) override {
    attention_.rope(x, head_dim, rotary_dim, first_row, table);
  }
  void write_kv(int layer, const Tensor& k, const Tensor& v, const BatchMeta& batch) override {
    attention_.write_kv(layer, k, v);
  }
  void rope_write_kv(int layer, Tensor& q, Tensor& k, const Tensor& v, int head_dim, int rotary_dim,
                     const BatchMeta& batch, const RopeTable& table) override {
    if (!attention_.rope_write_kv(layer, q, k, v, head_dim, rotary_dim, table))
      Backend::rope_write_kv(layer, q, k, v, head_dim, rotary_dim, batch, table);
  }
  void attention(int layer, const Tensor& q, const BatchMeta& batch, const AttentionParams& p, Tensor& out) override {
    attention_.attention(layer, q, p, out);
  }

  void moe(const Tensor& x, const MoeWeights& w, Tensor& out) override {
    moe_.run(x, w, graphs_.capturing(), *this, out);
  }

  void argmax_rows(const Tensor& logits, int32_t* out, float* value = nullptr) override {
    sampler_.argmax_rows(logits, out, value);
  }
  void sample_rows(const Tensor& logits, const SampleParams* params, int rows, int32_t* out) override {
    sampler_.sample_rows(logits, params, rows, out);
  }

 private:
  DeviceContext ctx_;
  OwnedStream stream_;
  DeviceArena memory_;
  KvCache kv_;
  DeviceBatch batch_{ctx_, memory_};
  GemmDispatcher gemm_{ctx_, memory_};
  ElementwiseOps elementwise_{ctx_, batch_};
  AttentionKernels attention_{ctx_, memory_, batch_, kv_};
  MoeKernels moe_{ctx_, memory_};
  DeviceSampler sampler_{ctx_, memory_};
  KvBlockCopier kv_copies_{ctx_, kv_};
  DecodeGraphs graphs_{ctx_};
};

}  // namespace

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return n;
}

Result<CudaMemoryInfo> cuda_memory_info(int device) {
  KEEL_CUDA_RETURN(cudaSetDevice(device), "set device");
  size_t free = 0, total = 0;
  KEEL_CUDA_RETURN(cudaMemGetInfo(&free, &total), "read device memory");
  cudaDeviceProp prop{};
  KEEL_CUDA_RETURN(cudaGetDeviceProperties(&prop, device), "read device properties");
  return CudaMemoryInfo{"cuda:" + std::to_string(device) + " (" + prop.name + ")", total, free};
}

// For nccl_communicator.cpp: the device and the stream a CUDA backend's collectives must run on.
bool cuda_backend_stream(Backend* backend, int* device, cudaStream_t* stream) {
  auto* b = dynamic_cast<CudaBackend*>(backend);
  if (b == nullptr) return false;
  *device = b->device();
  *stream = b->stream();
  return true;
}

Result<std::unique_ptr<Backend>> make_cuda_backend(int device) {
  const int n = cuda_device_count();
  if (n == 0) return unsupported("--backend cuda: no CUDA device is visible (no NVIDIA driver or GPU)");
  if (device < 0 || device >= n) return invalid_argument("CUDA device {} does not exist ({} visible)", device, n);
  auto b = std::make_unique<CudaBackend>(device);
  KEEL_RETURN_IF_ERROR(b->init());
  return std::unique_ptr<Backend>(std::move(b));
}

}  // namespace keel::backend
