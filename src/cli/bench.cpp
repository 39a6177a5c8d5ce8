// keel bench: prefill and decode throughput of a model, with decode's achieved memory bandwidth as a fraction
// of what a plain memory-read loop reaches on the same machine in the same run.
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <memory>

#include "base/units.h"
#include "cli/commands.h"
#include "cli/load_model.h"
#include "engine/generate.h"
#include "model/synthetic.h"

namespace keel::cli {

namespace {

struct BenchArgs {
  std::string dir, backend = "cpu", synthetic;
  int prompt_tokens = 256;
  int decode_tokens = 32;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The roofline's denominator: bytes/s of a parallel read over a buffer far larger than the caches.
double memory_read_bandwidth() {
  const size_t n = (512ull << 20) / sizeof(float);
  std::unique_ptr<float[]> buf(new float[n]);
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) buf[i] = static_cast<float>(i & 1023);
  double best = 0;
  volatile float sink = 0;
  for (int rep = 0; rep < 5; rep++) {
    auto t0 = std::chrono::steady_clock::now();
    float total = 0;
#pragma omp parallel for schedule(static) reduction(+ : total)
    for (size_t i = 0; i < n; i += 8) {
      float s = 0;
      for (int j = 0; j < 8; j++) s += buf[i + j];
      total += s;
    }
    sink = sink + total;
    best = std::max(best, n * sizeof(float) / seconds_since(t0));
  }
  return best;
}

int run_bench(const BenchArgs& a) {
  if (a.prompt_tokens <= 0 || a.decode_tokens <= 0)
    return report(invalid_argument("--prompt-tokens and --decode-tokens must be positive"));
  const int context = a.prompt_tokens + a.decode_tokens;
  model::LoadOptions options;
  options.max_batch_tokens = std::min(a.prompt_tokens, 512);
  options.kv_blocks = (context + options.block_size - 1) / options.block_size;
  LoadedModel lm;
  std::string what;
  if (!a.dir.empty()) {
    auto r = load_model(a.dir, a.backend, options);
    if (!r.ok()) return report(r.status());
    lm = std::move(*r);
    what = a.dir;
  } else {
    auto config = model::synthetic_config(a.synthetic.empty() ? "llama-100m" : a.synthetic);
    if (!config.ok()) return report(config.status());
    if (a.backend != "cpu" && a.backend != "auto")
      return report(unsupported("--backend {}: only the cpu backend is built", a.backend));
    lm.backend = backend::make_cpu_backend();
    auto m = model::Model::synthetic(*config, lm.backend.get(), options, 42);
    if (!m.ok()) return report(m.status());
    lm.model = std::move(*m);
    what = "synthetic " + (a.synthetic.empty() ? std::string("llama-100m") : a.synthetic);
  }
  model::Model& m = *lm.model;
  const auto& c = m.config();
  const auto& w = m.weights();
  if (context > c.max_position_embeddings)
    return report(invalid_argument("{} prompt + {} decode tokens exceed the model's context of {}", a.prompt_tokens,
                                   a.decode_tokens, c.max_position_embeddings));
  std::printf("keel bench: %s backend, %d threads, %s\n", lm.backend->name().c_str(), omp_get_max_threads(),
              what.c_str());
  std::printf("  model: %s, %.1fM parameters, %s, %s of weights\n", c.architecture.c_str(),
              w.parameter_count / 1e6, dtype_name(w.dtype), format_bytes(w.bytes).c_str());

  const double bw = memory_read_bandwidth();
  std::printf("  memory-read loop: %.2f GB/s\n", bw / 1e9);

  std::vector<int32_t> seq;
  for (int i = 0; i < a.prompt_tokens; i++) seq.push_back((i * 7919 + 13) % c.vocab_size);
  const auto& layout = m.kv_layout();
  kv::BlockPool pool(layout.num_blocks, layout.block_size);
  kv::BlockTable table(layout.block_size);
  std::vector<float> logits;

  auto t0 = std::chrono::steady_clock::now();
  for (int done = 0; done < a.prompt_tokens;) {
    const int end = std::min(a.prompt_tokens, done + m.max_batch_tokens());
    auto b = engine::chunk_batch(pool, table, seq, done, end, false);
    if (!b.ok()) return report(b.status());
    Status s = m.forward(*b, &logits);
    if (!s.ok()) return report(s);
    done = end;
  }
  const double prefill_s = seconds_since(t0);
  const double flops_per_token = 2.0 * w.parameter_count;
  std::printf("  prefill: %d tokens in %.2f s = %.1f tok/s (%.1f GFLOP/s of weight matmuls)\n", a.prompt_tokens,
              prefill_s, a.prompt_tokens / prefill_s, flops_per_token * a.prompt_tokens / prefill_s / 1e9);

  t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < a.decode_tokens; i++) {
    seq.push_back(static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin()));
    const int n = static_cast<int>(seq.size());
    auto b = engine::chunk_batch(pool, table, seq, n - 1, n, false);
    if (!b.ok()) return report(b.status());
    Status s = m.forward(*b, &logits);
    if (!s.ok()) return report(s);
  }
  const double decode_s = seconds_since(t0);
  // Each decode step reads every weight once (one row of the embedding table) and the KV so far.
  const double embed_bytes = c.tie_word_embeddings ? 0.0 : static_cast<double>(c.vocab_size) * c.hidden_size * dtype_size(w.dtype);
  const double mean_context = a.prompt_tokens + a.decode_tokens / 2.0;
  const double bytes_per_token = w.bytes - embed_bytes + mean_context * m.kv_bytes_per_token();
  const double tok_s = a.decode_tokens / decode_s;
  std::printf("  decode:  %d tokens in %.2f s = %.2f tok/s, %.2f GB/s read = %.2f of the memory-read loop\n",
              a.decode_tokens, decode_s, tok_s, bytes_per_token * tok_s / 1e9, bytes_per_token * tok_s / bw);
  return 0;
}

}  // namespace

void add_bench(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("bench", "Prefill/decode throughput with ratios to the machine's memory bandwidth");
  static BenchArgs a;
  cmd->add_option("MODEL_DIR", a.dir, "Hugging Face model directory (default: a synthetic model)");
  cmd->add_option("--backend", a.backend, "auto|cpu|cuda");
  cmd->add_option("--synthetic", a.synthetic, "Synthetic shape: llama-100m (default), llama3-8b, qwen3-8b, qwen3-30b-a3b");
  cmd->add_option("--prompt-tokens", a.prompt_tokens, "Prompt length for prefill");
  cmd->add_option("--decode-tokens", a.decode_tokens, "Tokens to decode");
  cmd->callback([&ctx] { ctx.exit_code = run_bench(a); });
}

}  // namespace keel::cli
