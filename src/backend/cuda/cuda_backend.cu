// The CUDA backend: cuBLAS GEMMs (F32 accumulation) and keel's kernels (*_kernels.cuh), all on one stream.
// Every buffer is allocated at start (weights, activations, KV, per-forward scratch sized for the largest batch)
// or on the first forward (rope tables, MoE expert tables): the allocation counter stays flat after warm-up.
// keel's own kernels (not cuBLAS', the MoE or prefill kernels) are launched with programmatic dependent launch
// (launch.cuh) so that each starts while the one before it drains; KEEL_CUDA_PDL=0 launches them plainly (A/B).
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <unordered_map>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/attention.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/decode_graphs.h"
#include "backend/cuda/device_arena.h"
#include "backend/cuda/device_batch.h"
#include "backend/cuda/device_context.h"
#include "backend/cuda/device_sampler.h"
#include "backend/cuda/dtype_dispatch.cuh"
#include "backend/cuda/elementwise_ops.h"
#include "backend/cuda/gemm_dispatch.h"
#include "backend/cuda/kv_block_copy.h"
#include "backend/cuda/kv_cache.h"
#include "backend/cuda/row_copy_kernels.cuh"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/moe_kernels.cuh"

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

  Status reserve_weights(uint64_t bytes) override { return memory_.reserve_weights(bytes); }

  Result<Tensor> weight(DType dtype, int64_t rows, int64_t cols, const void* host) override {
    const size_t n = static_cast<size_t>(rows * cols);
    const size_t bytes = n * dtype_size(ctx_.act);
    KEEL_ASSIGN_OR_RETURN(void* d, memory_.place_weight(bytes));
    if (dtype == ctx_.act) {
      KEEL_CUDA_RETURN(cudaMemcpy(d, host, n * dtype_size(dtype), cudaMemcpyHostToDevice), "upload weight");
    } else {
      // Convert on the host in chunks: to float, then to the compute dtype.
      const size_t chunk = 1 << 20;
      std::vector<float> f(std::min(n, chunk));
      std::vector<uint8_t> staged(std::min(n, chunk) * dtype_size(ctx_.act));
      for (size_t off = 0; off < n; off += chunk) {
        const size_t m = std::min(chunk, n - off);
        to_float(dtype, static_cast<const uint8_t*>(host) + off * dtype_size(dtype), f.data(), m);
        from_float_host(f.data(), ctx_.act, staged.data(), m);
        KEEL_CUDA_RETURN(cudaMemcpy(static_cast<uint8_t*>(d) + off * dtype_size(ctx_.act), staged.data(),
                                    m * dtype_size(ctx_.act), cudaMemcpyHostToDevice),
                         "upload weight");
      }
    }
    return Tensor{d, ctx_.act, rows, cols};
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

  void argmax_rows(const Tensor& logits, int32_t* out, float* value = nullptr) override {
    sampler_.argmax_rows(logits, out, value);
  }
  void sample_rows(const Tensor& logits, const SampleParams* params, int rows, int32_t* out) override {
    sampler_.sample_rows(logits, params, rows, out);
  }

  void copy_from_host(const float* src, Tensor& dst) override {
    std::vector<uint8_t> staged(dst.nbytes());
    from_float_host(src, dst.dtype, staged.data(), dst.numel());
    KEEL_CUDA_CHECK(cudaMemcpyAsync(dst.data, staged.data(), dst.nbytes(), cudaMemcpyHostToDevice, ctx_.stream));
    KEEL_CUDA_CHECK(cudaStreamSynchronize(ctx_.stream));
  }

  uint64_t bytes_allocated() const override { return memory_.bytes(); }
  uint64_t allocations() const override { return memory_.allocations(); }

  Status reserve_forward(const ForwardLimits& limits) override {
    batch_.reserve(limits);
    sampler_.reserve(limits);
    KEEL_RETURN_IF_ERROR(attention_.reserve(limits));
    gemm_.reserve(limits);
    if (limits.num_experts > 0) {
      const size_t tokens = limits.max_tokens, experts = limits.num_experts;
      const size_t pairs = tokens * limits.experts_per_token;
      memory_.reserve(moe_logits_, tokens * experts, true);
      memory_.reserve(moe_ids_, pairs, true);
      memory_.reserve(moe_weights_, pairs, true);
      memory_.reserve(moe_pair_row_, pairs, true);
      memory_.reserve(moe_row_token_, pairs, true);
      memory_.reserve(moe_active_, 3 * experts + 1, true);
      memory_.reserve(moe_gate_, pairs * limits.moe_intermediate, true);
      memory_.reserve(moe_y_, pairs * limits.hidden, true);
      if (pairs > kMoeFusedMaxPairs) {  // the grouped-GEMM path's scratch
        memory_.reserve(moe_x_, pairs * limits.hidden * dtype_size(ctx_.act), true);
        memory_.reserve(moe_up_, pairs * limits.moe_intermediate, true);
        memory_.reserve(moe_act_, pairs * limits.moe_intermediate * dtype_size(ctx_.act), true);
      }
    }
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
  void attention(int layer, const Tensor& q, const BatchMeta& batch, const AttentionParams& p,
                 Tensor& out) override {
    attention_.attention(layer, q, p, out);
  }

  // Route and run the experts on the device. Decode-sized batches (and anything captured in a graph) use the
  // fused kernels, which read each chosen expert's weights once per step whatever its token count; large
  // prefill batches group rows by expert and run cuBLAS GEMMs per expert, which needs the counts on the host.
  void moe(const Tensor& x, const MoeWeights& w, Tensor& out) override {
    const int tokens = static_cast<int>(x.rows), hidden = static_cast<int>(x.cols);
    const int experts = static_cast<int>(w.experts.size()), top_k = w.top_k;
    if (tokens == 0) return;
    if (top_k < 1 || top_k > std::min(experts, kMoeMaxTopK)) {
      std::fprintf(stderr, "error: moe: top_k=%d with %d experts (1..min(experts, %d) supported)\n", top_k, experts,
                   kMoeMaxTopK);
      std::abort();
    }
    const int64_t pairs = static_cast<int64_t>(tokens) * top_k;
    memory_.reserve(moe_logits_, static_cast<size_t>(tokens) * experts);
    memory_.reserve(moe_ids_, pairs);
    memory_.reserve(moe_weights_, pairs);
    memory_.reserve(moe_pair_row_, pairs);
    memory_.reserve(moe_row_token_, pairs);
    memory_.reserve(moe_active_, 3 * static_cast<size_t>(experts) + 1);
    const ExpertTable& table = expert_table(w);
    const bool vec = table.aligned && hidden % 8 == 0 && reinterpret_cast<uintptr_t>(x.data) % 16 == 0 &&
                     reinterpret_cast<uintptr_t>(w.router.data) % 16 == 0;
    const int nt = tokens == 1 ? 1 : tokens <= 4 ? 4 : 8;  // tokens per pass over a weight row
    dispatch(x.dtype, [&](auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      const dim3 grid(static_cast<unsigned>((experts + kMoeWarps - 1) / kMoeWarps),
                      static_cast<unsigned>((tokens + nt - 1) / nt));
      auto launch = [&](auto kernel) {
        kernel<<<grid, kMoeWarps * 32, 0, ctx_.stream>>>(static_cast<const T*>(x.data),
                                                      static_cast<const T*>(w.router.data), tokens, experts, hidden,
                                                      moe_logits_.ptr);
      };
      if (!vec) launch(moe_router_kernel<T, 8, false>);
      else if (nt == 1) launch(moe_router_kernel<T, 1, true>);
      else if (nt == 4) launch(moe_router_kernel<T, 4, true>);
      else launch(moe_router_kernel<T, 8, true>);
    });
    ctx_.check_launch();
    moe_topk_kernel<<<blocks_for(tokens, kTopkWarps), kTopkWarps * 32, kTopkWarps * experts * sizeof(float),
                      ctx_.stream>>>(moe_logits_.ptr, tokens, experts, top_k, w.norm_topk_prob, moe_ids_.ptr,
                                 moe_weights_.ptr);
    ctx_.check_launch();
    moe_group_kernel<<<1, 256, 2 * experts * sizeof(int32_t), ctx_.stream>>>(
        moe_ids_.ptr, static_cast<int>(pairs), top_k, experts, moe_pair_row_.ptr, moe_row_token_.ptr,
        moe_active_.ptr);
    ctx_.check_launch();
    // Rows per pass over an expert's weight row: a decode batch of 8 gives experts ~1 row each, and more
    // accumulators than that cost occupancy (104 registers a thread at 8, 54 at 4).
    const int expert_nt = tokens == 1 ? 1 : pairs <= 2 * experts ? 4 : 8;
    if (graphs_.capturing() || pairs <= static_cast<int64_t>(kMoeFusedMaxPairs)) moe_fused_experts(x, w, table, vec, expert_nt);
    else moe_grouped_gemms(x, w);
    moe_combine_kernel<<<dim3(static_cast<unsigned>((hidden + kCombineThreads - 1) / kCombineThreads),
                             static_cast<unsigned>(tokens)),
                        kCombineThreads, 0, ctx_.stream>>>(
        moe_y_.ptr, moe_pair_row_.ptr, moe_weights_.ptr, top_k, hidden, static_cast<float*>(out.data));
    ctx_.check_launch();
  }

  void synchronize() override { KEEL_CUDA_CHECK(cudaStreamSynchronize(ctx_.stream)); }

 private:
  DeviceContext ctx_;
  OwnedStream stream_;
  DeviceArena memory_;
  DeviceBatch batch_{ctx_, memory_};
  DeviceSampler sampler_{ctx_, memory_};
  GemmDispatcher gemm_{ctx_, memory_};
  ElementwiseOps elementwise_{ctx_, batch_};
  KvCache kv_;
  AttentionKernels attention_{ctx_, memory_, batch_, kv_};

  DecodeGraphs graphs_{ctx_};

  // --- Mixture of experts (moe_kernels.cuh has the grouping's layout).
  // Above this many (token, expert) pairs an eager forward runs cuBLAS GEMMs per expert instead of the fused
  // kernels, whose CUDA-core dot products cost more than the weight reads there (a 512-token prefill of
  // qwen3-30b-a3b: 4096 pairs, 39 GFLOP per layer).
  static constexpr size_t kMoeFusedMaxPairs = 1024;
  struct ExpertTable {
    DeviceArray<ExpertPtrs> ptrs;
    int inter = 0;         // moe_intermediate of the experts held here (0: none)
    bool aligned = true;   // every expert weight 16-byte aligned
  };
  std::unordered_map<const void*, ExpertTable> expert_tables_;  // by router weight
  DeviceArray<float> moe_logits_, moe_weights_, moe_gate_, moe_up_, moe_y_;
  DeviceArray<int32_t> moe_ids_, moe_pair_row_, moe_row_token_, moe_active_;
  DeviceArray<uint8_t> moe_x_, moe_act_;
  std::vector<int32_t> moe_active_host_;

  // Each MoE layer's expert pointers live on the device from its first use, keyed by its router; the model's
  // first forward is eager, so no capture ever uploads one.
  const ExpertTable& expert_table(const MoeWeights& w) {
    auto it = expert_tables_.find(w.router.data);
    if (it != expert_tables_.end()) return it->second;
    ExpertTable& t = expert_tables_[w.router.data];
    std::vector<ExpertPtrs> host;
    for (const ExpertWeights& ex : w.experts) {
      host.push_back({ex.gate.data, ex.up.data, ex.down.data});
      if (!ex.gate.empty()) t.inter = static_cast<int>(ex.gate.rows);
      for (const void* p : {ex.gate.data, ex.up.data, ex.down.data}) t.aligned &= reinterpret_cast<uintptr_t>(p) % 16 == 0;
    }
    memory_.upload(t.ptrs, host.data(), host.size(), ctx_.stream);
    return t;
  }

  // Gate/up + activation, then down, for every active expert's rows: one grid row per possible active expert
  // (min(experts, pairs)), the idle ones returning at once.
  void moe_fused_experts(const Tensor& x, const MoeWeights& w, const ExpertTable& table, bool vec, int nt) {
    const int tokens = static_cast<int>(x.rows), hidden = static_cast<int>(x.cols);
    const int experts = static_cast<int>(w.experts.size()), inter = table.inter;
    const int64_t pairs = static_cast<int64_t>(tokens) * w.top_k;
    memory_.reserve(moe_gate_, static_cast<size_t>(pairs) * std::max(inter, 1));
    memory_.reserve(moe_y_, static_cast<size_t>(pairs) * hidden);
    const bool v = vec && inter % 8 == 0;
    const unsigned slots = static_cast<unsigned>(std::min<int64_t>(experts, pairs));
    const bool gelu = w.activation == GluActivation::kGeluTanh;
    dispatch(x.dtype, [&](auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      auto gate_up = [&](auto kernel) {
        if (inter == 0) return;  // no expert here: the down kernel writes zeros
        kernel<<<dim3(static_cast<unsigned>((inter + kMoeWarps - 1) / kMoeWarps), slots), kMoeWarps * 32, 0,
                 ctx_.stream>>>(static_cast<const T*>(x.data), table.ptrs.ptr, moe_active_.ptr, moe_row_token_.ptr,
                            experts, hidden, inter, gelu, moe_gate_.ptr);
      };
      auto down = [&](auto kernel) {
        kernel<<<dim3(static_cast<unsigned>((hidden + kMoeWarps - 1) / kMoeWarps), slots), kMoeWarps * 32, 0,
                 ctx_.stream>>>(moe_gate_.ptr, table.ptrs.ptr, moe_active_.ptr, experts, hidden, inter, moe_y_.ptr);
      };
      if (!v) gate_up(moe_gate_up_kernel<T, 8, false>), down(moe_down_kernel<T, 8, false>);
      else if (nt == 1) gate_up(moe_gate_up_kernel<T, 1, true>), down(moe_down_kernel<T, 1, true>);
      else if (nt == 4) gate_up(moe_gate_up_kernel<T, 4, true>), down(moe_down_kernel<T, 4, true>);
      else gate_up(moe_gate_up_kernel<T, 8, true>), down(moe_down_kernel<T, 8, true>);
    });
    ctx_.check_launch();
  }

  // Large eager batches: the active-expert list comes to the host (one sync per layer), each expert's rows are
  // gathered together, and its GEMMs run on cuBLAS (tensor cores).
  void moe_grouped_gemms(const Tensor& x, const MoeWeights& w) {
    const int64_t hidden = x.cols, pairs = x.rows * w.top_k;
    const int experts = static_cast<int>(w.experts.size());
    const size_t xs = dtype_size(x.dtype);
    int64_t inter = 0;
    for (const ExpertWeights& ex : w.experts)
      if (!ex.gate.empty()) inter = ex.gate.rows;
    memory_.reserve(moe_x_, pairs * hidden * xs);
    memory_.reserve(moe_gate_, pairs * std::max<int64_t>(inter, 1));
    memory_.reserve(moe_up_, pairs * std::max<int64_t>(inter, 1));
    memory_.reserve(moe_act_, pairs * std::max<int64_t>(inter, 1) * xs);
    memory_.reserve(moe_y_, pairs * hidden);
    moe_active_host_.resize(3 * static_cast<size_t>(experts) + 1);
    KEEL_CUDA_CHECK(cudaMemcpyAsync(moe_active_host_.data(), moe_active_.ptr, moe_active_host_.size() * sizeof(int32_t),
                                    cudaMemcpyDeviceToHost, ctx_.stream));
    KEEL_CUDA_CHECK(cudaStreamSynchronize(ctx_.stream));
    dispatch(x.dtype, [&](auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      gather_rows_kernel<T><<<static_cast<unsigned>(pairs), 256, 0, ctx_.stream>>>(
          static_cast<const T*>(x.data), moe_row_token_.ptr, hidden, reinterpret_cast<T*>(moe_x_.ptr));
    });
    ctx_.check_launch();
    const int active = moe_active_host_[3 * experts];
    for (int a = 0; a < active; a++) {
      const ExpertWeights& ex = w.experts[moe_active_host_[a]];
      const int64_t first = moe_active_host_[experts + a], n = moe_active_host_[2 * experts + a];
      Tensor y{moe_y_.ptr + first * hidden, DType::kF32, n, hidden};
      if (ex.gate.empty()) {  // another tensor-parallel rank's expert: contributes nothing here
        KEEL_CUDA_CHECK(cudaMemsetAsync(y.data, 0, y.nbytes(), ctx_.stream));
        continue;
      }
      Tensor xe{moe_x_.ptr + first * hidden * xs, x.dtype, n, hidden};
      Tensor g{moe_gate_.ptr, DType::kF32, n, inter}, u{moe_up_.ptr, DType::kF32, n, inter};
      Tensor act{moe_act_.ptr, x.dtype, n, inter};
      gemm_glu(xe, ex.gate, ex.up, w.activation, g, u, act);
      gemm(act, ex.down, nullptr, y);
    }
  }

  // --- Prefix cache tiers (host RAM, SSD): kv_block_copy.h.
 public:
  void copy_kv_block_to_host(int block, void* dst) override { kv_copies_.to_host(block, dst); }
  void copy_kv_block_from_host(const void* src, int block) override { kv_copies_.from_host(src, block); }

 private:
  KvBlockCopier kv_copies_{ctx_, kv_};
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
