// nvcc -O3 -std=c++17 -gencode=arch=compute_90,code=sm_90 -Isrc -o /tmp/gemv_v3 dev/kernels/gemv_v3.cu -lcublas
//
// The decode GEMV, third version (src/backend/cuda/gemv.cuh: v1's layout, a warp per job and 4 words in flight
// per lane and row, with the first words loaded before the PDL wait and q/k/v or gate+up·GLU stored by the
// kernel) against the first one (gemv_v1_kernel) and cuBLAS on the llama3-8b decode shapes, bf16 in, f32 out.
// Then a decode-like chain in a CUDA graph, 32 "layers" of norm → qkv → norm → o → norm → gate+up·GLU → down,
// each norm a one-block kernel standing in for the small kernels between the GEMVs, with PDL off and on: what
// the launches between GEMVs cost and what PDL recovers of it. Figures of merit: GB/s of weight read against a
// streaming-read kernel in the same run.
//
// Usage: gemv_v3   prints per shape and M the error against cuBLAS and µs / TB/s / fraction of each, then the chain.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <utility>
#include <vector>

#include "../../src/backend/cuda/gemv.cuh"
#include "harness.cuh"

using harness::max_rel;
using harness::stream_read_kernel;
using harness::time_us;
using namespace keel::backend::cuda;
using bf16 = __nv_bfloat16;

// The first version (gemv_v1.cu's numbers): one warp per output row, a block per 8 rows, 4 words in flight.
template <int M>
__global__ void __launch_bounds__(256) gemv_v1_kernel(const bf16* __restrict__ x, const bf16* __restrict__ w,
                                                      float* __restrict__ out, int n_rows, int k) {
  const int lane = threadIdx.x % 32;
  const int n = blockIdx.x * 8 + threadIdx.x / 32;
  if (n >= n_rows) return;
  const int words = k / 8;
  const uint4* wr = reinterpret_cast<const uint4*>(w + static_cast<int64_t>(n) * k);
  const uint4* xr = reinterpret_cast<const uint4*>(x);
  float acc[M] = {};
  auto step = [&](const uint4& wv, int i) {
    float wf[8];
    bf16x8_to_float(wv, wf);
    for (int m = 0; m < M; m++) {
      float xf[8];
      bf16x8_to_float(__ldg(xr + static_cast<int64_t>(m) * words + i), xf);
      for (int j = 0; j < 8; j++) acc[m] = fmaf(wf[j], xf[j], acc[m]);
    }
  };
  int i = lane;
  for (; i + 96 < words; i += 128) {
    const uint4 a = load_streaming(wr + i), b = load_streaming(wr + i + 32), c = load_streaming(wr + i + 64),
                d = load_streaming(wr + i + 96);
    step(a, i);
    step(b, i + 32);
    step(c, i + 64);
    step(d, i + 96);
  }
  for (; i < words; i += 32) step(load_streaming(wr + i), i);
  for (int m = 0; m < M; m++) {
    const float s = warp_sum(acc[m]);
    if (lane == 0) out[static_cast<int64_t>(m) * n_rows + n] = s;
  }
}

// A stand-in for the small kernels between GEMVs: one block, x = in / rms(in) as bf16.
__global__ void norm_kernel(const float* in, int n, bf16* x) {
  pdl_launch_dependents();
  pdl_wait();
  float ss = 0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) ss += in[i] * in[i];
  const float inv = rsqrtf(block_sum(ss) / n + 1e-6f);
  for (int i = threadIdx.x; i < n; i += blockDim.x) x[i] = __float2bfloat16(in[i] * inv);
}

__global__ void glu_ref_kernel(const float* gu, int inter, bf16* out) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < inter) out[i] = __float2bfloat16(glu_activation(gu[i], false) * gu[inter + i]);
}

int main() {
  int sms = 0;
  CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  struct Shape {
    const char* name;
    int n, k;
  };
  const Shape shapes[] = {{"qkv", 6144, 4096}, {"o", 4096, 4096}, {"gate+up", 28672, 4096},
                          {"down", 4096, 14336}, {"lm_head", 128256, 4096}};
  // Several copies of each weight, cycled, so that L2 (50 MB) never holds the one being read.
  const size_t max_w = static_cast<size_t>(128256) * 4096;
  const int copies = 3;
  bf16 *w = nullptr, *x = nullptr, *act = nullptr, *act_ref = nullptr;
  float *y0 = nullptr, *y1 = nullptr;
  CHECK(cudaMalloc(&w, max_w * copies * 2));
  CHECK(cudaMalloc(&x, 8 * 14336 * 2));
  CHECK(cudaMalloc(&act, 8 * 14336 * 2));
  CHECK(cudaMalloc(&act_ref, 8 * 14336 * 2));
  CHECK(cudaMalloc(&y0, 8 * 128256 * 4));
  CHECK(cudaMalloc(&y1, 8 * 128256 * 4));
  {
    std::vector<bf16> h(max_w);
    std::mt19937 rng(1);
    std::normal_distribution<float> d(0, 1);
    for (auto& v : h) v = __float2bfloat16(d(rng));
    for (int c = 0; c < copies; c++) CHECK(cudaMemcpy(w + c * max_w, h.data(), max_w * 2, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(x, h.data() + 12345, 8 * 14336 * 2, cudaMemcpyHostToDevice));
  }
  unsigned* sink = nullptr;
  CHECK(cudaMalloc(&sink, 4));
  const float read_us =
      time_us([&] { stream_read_kernel<<<sms * 8, 512>>>(reinterpret_cast<uint4*>(w), max_w * copies / 8, sink); }, 10);
  const double bw = max_w * copies * 2.0 / (read_us * 1e-6);
  std::printf("streaming read: %.2f TB/s\n", bw / 1e12);

  cublasHandle_t h;
  cublasCreate(&h);
  const GemvLaunch plain{nullptr, false};
  for (const Shape& s : shapes) {
    for (int m : {1, 2}) {
      int which = 0;
      auto v3 = [&] {
        const GemvOut o{y0, nullptr, nullptr, nullptr, nullptr, nullptr, s.n, 0, 0};
        CHECK(launch_gemv(x, w + (which++ % copies) * max_w, m, s.n, s.k, 0, o, plain));
      };
      auto v1 = [&] {
        const bf16* wc = w + (which++ % copies) * max_w;
        if (m == 1) gemv_v1_kernel<1><<<(s.n + 7) / 8, 256>>>(x, wc, y0, s.n, s.k);
        else gemv_v1_kernel<2><<<(s.n + 7) / 8, 256>>>(x, wc, y0, s.n, s.k);
      };
      auto cublas = [&] {
        const float alpha = 1, beta = 0;
        cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, s.n, m, s.k, &alpha, w + (which++ % copies) * max_w, CUDA_R_16BF,
                     s.k, x, CUDA_R_16BF, s.k, &beta, y1, CUDA_R_32F, s.n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
      };
      which = 0;
      CHECK(cudaMemset(y0, 0xff, static_cast<size_t>(m) * s.n * 4));  // NaN: every output must be written
      v3();
      which = 0;
      cublas();
      CHECK(cudaDeviceSynchronize());
      std::vector<float> a(static_cast<size_t>(m) * s.n), b(a.size());
      CHECK(cudaMemcpy(a.data(), y0, a.size() * 4, cudaMemcpyDeviceToHost));
      CHECK(cudaMemcpy(b.data(), y1, b.size() * 4, cudaMemcpyDeviceToHost));
      const double err = max_rel(a, b);
      const float t2 = time_us(v3, 30), t1 = time_us(v1, 30), tc = time_us(cublas, 30);
      const double bytes = static_cast<double>(s.n) * s.k * 2;
      std::printf("%-8s n=%6d k=%5d m=%d  err %.1e  v3 %7.1f us (%.2f)  v1 %7.1f us (%.2f)  cublas %7.1f us (%.2f)\n",
                  s.name, s.n, s.k, m, err, t2, bytes / t2 * 1e6 / bw, t1, bytes / t1 * 1e6 / bw, tc,
                  bytes / tc * 1e6 / bw);
    }
  }

  // gate+up with the GLU stored by the GEMV, against the plain GEMV and a GLU kernel.
  {
    const int inter = 14336, k = 4096;
    int which = 0;
    auto fused = [&] {
      const GemvGlu o{act, inter, false};
      CHECK(launch_gemv(x, w + (which++ % copies) * max_w, 1, inter, k, inter, o, plain));
    };
    auto separate = [&] {
      const GemvOut o{y1, nullptr, nullptr, nullptr, nullptr, nullptr, 2 * inter, 0, 0};
      CHECK(launch_gemv(x, w + (which++ % copies) * max_w, 1, 2 * inter, k, 0, o, plain));
      glu_ref_kernel<<<(inter + 255) / 256, 256>>>(y1, inter, act_ref);
    };
    which = 0;
    fused();
    which = 0;
    separate();
    CHECK(cudaDeviceSynchronize());
    std::vector<bf16> a(inter), b(inter);
    CHECK(cudaMemcpy(a.data(), act, inter * 2, cudaMemcpyDeviceToHost));
    CHECK(cudaMemcpy(b.data(), act_ref, inter * 2, cudaMemcpyDeviceToHost));
    std::vector<float> af(inter), bf(inter);
    for (int i = 0; i < inter; i++) af[i] = __bfloat162float(a[i]), bf[i] = __bfloat162float(b[i]);
    const float tf = time_us(fused, 30), ts = time_us(separate, 30);
    const double bytes = 2.0 * inter * k * 2;
    std::printf("gate+up·glu m=1  err %.1e  fused %7.1f us (%.2f)  gemv + glu kernel %7.1f us (%.2f)\n",
                max_rel(af, bf), tf, bytes / tf * 1e6 / bw, ts, bytes / ts * 1e6 / bw);
  }

  // The decode-like chain: 4 weight sets (1.7 GB) cycled over 32 layers, captured once per PDL setting.
  {
    const int hidden = 4096, inter = 14336, layers = 32, sets = 4;
    const size_t qkv = 6144ull * hidden, o = 1ull * hidden * hidden, gu = 2ull * inter * hidden,
                 dn = 1ull * hidden * inter, per = qkv + o + gu + dn;
    bf16* lw = w;  // reuses the copies' memory (3 x 1 GB >= 4 x 436 MB)
    float *q = nullptr, *kv = nullptr, *res = nullptr;
    bf16* xa = nullptr;
    CHECK(cudaMalloc(&q, hidden * 4));
    CHECK(cudaMalloc(&kv, 2 * 1024 * 4));
    CHECK(cudaMalloc(&res, hidden * 4));
    CHECK(cudaMalloc(&xa, inter * 2));
    CHECK(cudaMemset(res, 0, hidden * 4));
    cudaStream_t st;
    CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    for (bool pdl : {false, true}) {
      const GemvLaunch l{st, pdl};
      auto norm = [&](const float* in, int n, bf16* out) {
        CHECK(launch_kernel(pdl, norm_kernel, dim3(1), dim3(1024), 0, st, in, n, out));
      };
      CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
      for (int layer = 0; layer < layers; layer++) {
        const bf16* base = lw + (layer % sets) * per;
        norm(res, hidden, xa);
        const GemvOut t{q, kv, kv + 1024, nullptr, nullptr, nullptr, hidden, 1024, 1024};
        CHECK(launch_gemv(xa, base, 1, 6144, hidden, 0, t, l));
        norm(q, hidden, xa);
        const GemvOut to{res, nullptr, nullptr, nullptr, nullptr, nullptr, hidden, 0, 0};
        CHECK(launch_gemv(xa, base + qkv, 1, hidden, hidden, 0, to, l));
        norm(res, hidden, xa);
        const GemvGlu tg{act, inter, false};
        CHECK(launch_gemv(xa, base + qkv + o, 1, inter, hidden, inter, tg, l));
        CHECK(launch_gemv(act, base + qkv + o + gu, 1, hidden, inter, 0, to, l));
      }
      cudaGraph_t graph;
      cudaGraphExec_t exec;
      CHECK(cudaStreamEndCapture(st, &graph));
      CHECK(cudaGraphInstantiate(&exec, graph, 0));
      auto run = [&] { CHECK(cudaGraphLaunch(exec, st)); };
      const double us = harness::median_ms(run, 1, 20, st) * 1000.0 / layers, bytes = per * 2.0;
      std::printf("chain pdl=%d: %.1f us per layer (ideal %.1f at the streaming read): %.2f of it\n", pdl, us,
                  bytes / bw * 1e6, bytes / bw * 1e6 / us);
      CHECK(cudaGraphExecDestroy(exec));
      CHECK(cudaGraphDestroy(graph));
    }
  }
  CHECK(cudaGetLastError());
  return 0;
}
