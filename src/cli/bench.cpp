// keel bench: prefill and decode throughput of a model, with decode's achieved memory bandwidth as a fraction
// of what a plain memory-read loop reaches on the same machine in the same run, and (on a GPU) prefill's
// matmul throughput as a fraction of the bf16 GEMM peak measured in the same run.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>

#include "backend/registry.h"
#include "base/units.h"
#include "cli/commands.h"
#include "cli/flags.h"
#include "runtime/load_model.h"
#include "engine/follower.h"
#include "engine/model_runner.h"
#include "model/synthetic.h"
#include "model/weights.h"

namespace keel::cli {

namespace {

struct BenchArgs {
  std::string dir, backend = "cpu", synthetic, batches, prompts;
  int decode_tokens = 32;
  int prefill_chunk = 0;  // 0: the backend's default (cpu 512, cuda 8192)
  runtime::DistOptions dist;  // --tensor-parallel ranks: rank 0 measures, the others follow
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

// Greedy choice (temperature 0), as the engine runs temperature-0 requests: the argmax is taken on the device (as
// the peer does), so only one id per sequence leaves it (tensor parallel: one (value, id) pair per rank).
struct GreedyRows {
  explicit GreedyRows(int n) : rows(n) {
    params.temperature = 0;
    for (engine::ChoiceRow& r : rows) r.params = &params;
  }
  // Points each row at its sequence's history (which a push_back may move).
  const std::vector<engine::ChoiceRow>& of(const std::vector<engine::Chunk>& chunks) {
    for (size_t i = 0; i < chunks.size(); i++) {
      rows[i].history = &chunks[i].seq->tokens;
      rows[i].prompt_len = chunks[i].seq->prompt_len;
      rows[i].counter = static_cast<uint64_t>(chunks[i].seq->generated());
    }
    return rows;
  }
  engine::SamplingParams params;
  std::vector<engine::ChoiceRow> rows;
};

// Prefills `seq` in chunks of the model's max_batch_tokens through the engine's step (ModelRunner::step), its KV
// in `pool`; the last chunk chooses the first token.
Status prefill(engine::ModelRunner& runner, const model::Model& m, kv::BlockPool& pool, engine::Sequence& seq) {
  GreedyRows greedy(1);
  std::vector<engine::Choice> choices;
  const int n = static_cast<int>(seq.tokens.size());
  for (int done = 0; done < n;) {
    const int end = std::min(n, done + m.max_batch_tokens());
    KEEL_RETURN_IF_ERROR(seq.table.append(pool, end - done));
    const std::vector<engine::Chunk> chunk = {{&seq, done, end}};
    const std::span<const engine::ChoiceRow> rows(greedy.of(chunk).data(), end == n ? 1 : 0);
    KEEL_RETURN_IF_ERROR(runner.step(chunk, rows, &choices));
    done = end;
  }
  return Status();
}

// Decode throughput of `batch` sequences stepping together: each is prefilled with `prompt` tokens, then all
// decode `steps` tokens, one engine step (ModelRunner::step, the engine's own) per token. The tokens fed back are
// a fixed pseudo-random stream, not the choices: a synthetic model's argmax may repeat one token, which would
// route every MoE token to the same experts. Returns tokens/s over the decode steps. With a tensor-parallel group,
// `leader` sends every step's plan to the other ranks first.
Result<double> measure_decode(model::Model& m, backend::Backend& b, int batch, int prompt, int steps,
                              engine::StepLeader* leader) {
  const auto& c = m.config();
  const auto& layout = m.kv_layout();
  kv::BlockPool pool(layout.num_blocks, layout.block_size);
  engine::ModelRunner runner(&m, leader, env::Env::posix());
  std::vector<std::unique_ptr<engine::Sequence>> seqs;
  // A hybrid model's sequences each hold a slot of its recurrent-state pool, as the engine's do.
  if (m.recurrent_state_slots() > 0 && batch > m.recurrent_state_slots())
    return invalid_argument("batch {} exceeds the model's {} recurrent-state slots", batch, m.recurrent_state_slots());
  for (int s = 0; s < batch; s++) {
    std::vector<int32_t> tokens;
    for (int i = 0; i < prompt; i++) tokens.push_back((i * 7919 + s * 104729 + 13) % c.vocab_size);
    seqs.push_back(std::make_unique<engine::Sequence>(s, std::move(tokens), layout.block_size));
    seqs.back()->state_slot = s;
    KEEL_RETURN_IF_ERROR(prefill(runner, m, pool, *seqs.back()));
  }
  GreedyRows greedy(batch);
  std::vector<engine::Chunk> chunks(batch);
  std::vector<engine::Choice> chosen;
  auto step = [&]() -> Status {
    for (int s = 0; s < batch; s++) {
      engine::Sequence& seq = *seqs[s];
      seq.tokens.push_back((seq.tokens.back() * 31 + 7) % c.vocab_size);
      const int pos = static_cast<int>(seq.tokens.size()) - 1;
      KEEL_RETURN_IF_ERROR(seq.table.append(pool, 1));
      chunks[s] = {&seq, pos, pos + 1};
    }
    return runner.step(chunks, greedy.of(chunks), &chosen);
  };
  KEEL_RETURN_IF_ERROR(step());  // warm-up
  b.synchronize();
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; i++) KEEL_RETURN_IF_ERROR(step());
  b.synchronize();
  return batch * steps / seconds_since(t0);
}

std::vector<int> parse_list(const std::string& text) {
  std::vector<int> out;
  size_t i = 0;
  while (i < text.size()) {
    size_t j = text.find(',', i);
    if (j == std::string::npos) j = text.size();
    out.push_back(std::atoi(text.substr(i, j - i).c_str()));
    i = j + 1;
  }
  return out;
}

// FLOPs of causal attention over one prompt of n tokens (QK^T and PV, 2 each per multiply-add), every layer.
double attention_flops(const model::ModelConfig& c, int n) {
  double total = 0;
  for (const auto& l : c.layers) {
    double keys = 0;  // visible keys summed over the rows
    for (int i = 0; i < n; i++) keys += l.sliding && c.sliding_window > 0 ? std::min(i + 1, c.sliding_window) : i + 1;
    total += 4.0 * c.num_heads * c.head_dim * keys;
  }
  return total;
}

// Tensor parallel: what the all-reduces of one decode step cost alone (2 x layers + 1 of [batch, hidden] f32, as
// the forward runs them), and the bus bandwidth NCCL reaches on a large buffer, 2(n-1)/n x bytes / time (nccl-tests'
// busBW), in the same run.
Status report_all_reduce(model::Model& m, dist::Communicator& tp, engine::StepLeader& leader,
                         const std::vector<int>& batches) {
  backend::Tensor scratch;
  const int per_step = 2 * m.shard().layers + 1;
  const uint64_t hidden = static_cast<uint64_t>(m.config().hidden_size);
  for (int batch : batches) {
    KEEL_RETURN_IF_ERROR(leader.all_reduce_bench(batch * hidden, 50));
    KEEL_ASSIGN_OR_RETURN(double t, engine::time_all_reduce(m, tp, batch * hidden, 50, &scratch));
    std::printf("  all-reduce batch %3d: %.3f ms/step (%d x [%d, %llu] f32, %.1f us each)\n", batch, 1e3 * t * per_step,
                per_step, batch, static_cast<unsigned long long>(hidden), 1e6 * t);
  }
  const uint64_t big = 64ull << 20;  // floats: 256 MiB
  KEEL_RETURN_IF_ERROR(leader.all_reduce_bench(big, 20));
  KEEL_ASSIGN_OR_RETURN(double t, engine::time_all_reduce(m, tp, big, 20, &scratch));
  const double n = tp.size(), bytes = static_cast<double>(big) * sizeof(float);
  std::printf("  all-reduce of 256 MiB over %d ranks: %.2f ms = %.1f GB/s algorithm, %.1f GB/s bus bandwidth\n",
              tp.size(), 1e3 * t, bytes / t / 1e9, 2 * (n - 1) / n * bytes / t / 1e9);
  return Status();
}

int run_bench(const BenchArgs& a) {
  // The launcher of a tensor-parallel group, or one of its followers, ends here.
  std::optional<runtime::RankEnv> rank;
  if (std::optional<int> code = runtime::dispatch_bench_rank(a.dir, a.synthetic, a.backend, a.dist, &rank)) return *code;
  auto backend = backend::create(a.backend);
  if (!backend.ok()) return report(backend.status());
  runtime::RankGroup group;
  if (rank) {
    auto g = runtime::join_group(*rank, a.dist, backend->get());
    if (!g.ok()) return report(g.status());
    group = std::move(*g);
  }
  const bool gpu = (*backend)->name() == "cuda";
  // Prefill lengths: the first also sets the decode runs' context.
  const std::vector<int> prompts = parse_list(a.prompts.empty() ? (gpu ? "512,2048,8192" : "256") : a.prompts);
  for (int p : prompts)
    if (p <= 0) return report(invalid_argument("--prompt-tokens {}: lengths must be positive", a.prompts));
  if (a.decode_tokens <= 0) return report(invalid_argument("--decode-tokens must be positive"));
  const int max_prompt = *std::max_element(prompts.begin(), prompts.end());
  const int chunk = a.prefill_chunk > 0 ? a.prefill_chunk : (gpu ? 8192 : 512);
  std::vector<int> batches = parse_list(a.batches.empty() ? (gpu ? "1,8,32,64,128" : "1") : a.batches);
  for (int b : batches)
    if (b <= 0) return report(invalid_argument("--batches {}: batch sizes must be positive", a.batches));
  const int max_batch = *std::max_element(batches.begin(), batches.end());
  int decode_prompt = prompts[0];
  int context = decode_prompt + a.decode_tokens + 2;
  model::LoadOptions options;
  // One forward takes a whole prompt up to `chunk` tokens; longer ones are prefilled in chunks of it.
  options.max_batch_tokens = std::max({std::min(max_prompt, chunk), max_batch, 1});
  const int blocks_per = (std::max(context, max_prompt) + options.block_size - 1) / options.block_size;
  options.kv_blocks = std::max(max_batch * ((context + options.block_size - 1) / options.block_size), blocks_per) + 1;
  std::unique_ptr<engine::StepLeader> leader_owner;
  if (rank) {
    options.communicator = group.tensor;
    options.pipeline = group.pipeline;
    if (Status s = runtime::send_load_options(*group.plans, options); !s.ok()) return report(s);
    leader_owner = std::make_unique<engine::StepLeader>(group.plans);
  }
  engine::StepLeader* leader = leader_owner.get();
  runtime::LoadedModel lm;
  lm.backend = std::move(*backend);
  std::string what;
  if (!a.dir.empty()) {
    auto m = model::Model::load(env::Env::posix(), a.dir, lm.backend.get(), options);
    if (!m.ok()) return report(m.status());
    lm.model = std::move(*m);
    what = a.dir;
  } else {
    const std::string shape = a.synthetic.empty() ? (gpu ? "llama3-8b" : "llama-100m") : a.synthetic;
    auto config = model::synthetic_config(shape);
    if (!config.ok()) return report(config.status());
    auto m = model::Model::synthetic(*config, lm.backend.get(), options, 42);
    if (!m.ok()) return report(m.status());
    lm.model = std::move(*m);
    what = "synthetic " + shape;
  }
  model::Model& m = *lm.model;
  if (rank) {
    if (Status s = runtime::wait_until_loaded(group); !s.ok()) return report(s);
  }
  const auto& c = m.config();
  const auto& w = m.weights();
  // A prompt that fills the context (8192 on an 8192 model) still prefills; decode then starts shorter.
  if (context > c.max_position_embeddings) {
    decode_prompt = c.max_position_embeddings - a.decode_tokens - 2;
    context = c.max_position_embeddings;
    if (decode_prompt <= 0)
      return report(invalid_argument("{} decode tokens exceed the model's context of {}", a.decode_tokens,
                                     c.max_position_embeddings));
  }
  if (max_prompt > c.max_position_embeddings)
    return report(invalid_argument("a {}-token prompt exceeds the model's context of {}", max_prompt,
                                   c.max_position_embeddings));
  std::printf("keel bench: %s backend, %s\n", lm.backend->name().c_str(), what.c_str());
  std::printf("  model: %s, %.3fB parameters, %s, %s of weights\n", c.architecture.c_str(), w.parameter_count / 1e9,
              dtype_name(w.dtype), format_bytes(w.bytes).c_str());
  if (rank) std::printf("  tensor parallel: %s; parameters and bytes above are this rank's\n", group.describe.c_str());

  // The machine's limits, measured now.
  double bw = 0, peak = 0;
  if (gpu) {
    auto kind = backend::resolve(lm.backend->name());
    if (!kind.ok()) return report(kind.status());
    auto r = (*kind)->read_bandwidth(0);
    if (!r.ok()) return report(r.status());
    bw = *r;
    auto f = (*kind)->gemm_flops(0, 8192);
    if (!f.ok()) return report(f.status());
    peak = *f;
    std::printf("  device: HBM read %.2f TB/s (streaming kernel), bf16 GEMM %.0f TFLOP/s (cuBLAS 8192^3)\n",
                bw / 1e12, peak / 1e12);
  }
  if (!gpu) {
    bw = memory_read_bandwidth();
    std::printf("  host: %d threads, memory-read loop %.2f GB/s\n", omp_get_max_threads(), bw / 1e9);
  }

  // Prefill: one sequence of each length, chunked by max_batch_tokens; the last chunk chooses a token. The
  // fraction counts the weight matmuls a prompt goes through (of the whole model, against the peak of all its
  // ranks): 2 x the layers' parameters per token — of an MoE layer only the k experts a token is routed to,
  // not the embedding (a lookup) — plus the head once (one logit row). "With attention" adds causal attention's.
  const double vocab_params = static_cast<double>(c.vocab_size) * c.hidden_size;
  int moe_layers = 0;
  for (auto& l : c.layers) moe_layers += l.moe;
  const double idle_expert_params =
      moe_layers == 0 ? 0.0
                           : 3.0 * c.hidden_size * c.moe_intermediate_size *
                                 (c.num_experts - c.num_experts_per_tok) * moe_layers;
  const double token_params = static_cast<double>(model::count_weights(c).parameters) -
                              vocab_params * (c.tie_word_embeddings ? 1 : 2) - idle_expert_params;
  const int world = a.dist.world();
  for (int prompt : prompts) {
    std::vector<int32_t> seq;
    for (int i = 0; i < prompt; i++) seq.push_back((i * 7919 + 13) % c.vocab_size);
    const auto& layout = m.kv_layout();
    engine::ModelRunner runner(&m, leader, env::Env::posix());
    double best = 1e30;
    for (int rep = 0; rep < (gpu ? 3 : 1); rep++) {
      kv::BlockPool pool(layout.num_blocks, layout.block_size);
      engine::Sequence sequence(0, seq, layout.block_size);
      sequence.state_slot = 0;
      lm.backend->synchronize();
      auto t0 = std::chrono::steady_clock::now();
      if (Status s = prefill(runner, m, pool, sequence); !s.ok()) return report(s);
      lm.backend->synchronize();
      best = std::min(best, seconds_since(t0));
    }
    const double flops = 2.0 * (token_params * prompt + vocab_params), attn = attention_flops(c, prompt);
    const int chunks = (prompt + m.max_batch_tokens() - 1) / m.max_batch_tokens();
    std::printf("  prefill %5d tokens%s: %.3f s = %.0f tok/s, %.1f GFLOP/s of weight matmuls", prompt,
                chunks > 1 ? fmt::format(" ({} chunks)", chunks).c_str() : "", best, prompt / best,
                flops / best / 1e9);
    if (peak > 0)
      std::printf(" = %.2f of the GEMM peak%s (with attention %.2f)", flops / best / (peak * world),
                  world > 1 ? fmt::format(" of {} GPUs", world).c_str() : "", (flops + attn) / best / (peak * world));
    std::printf("\n");
  }

  // Decode reads every weight once per step (one embedding row) plus each sequence's KV; of an MoE layer's
  // experts only those some token routes to, E * (1 - (1 - k/E)^batch) of them on average under uniform routing.
  const double embed_bytes =
      c.tie_word_embeddings ? 0.0 : static_cast<double>(c.vocab_size) * c.hidden_size * dtype_size(w.dtype);
  const double kv_token_bytes = 2.0 * c.num_layers * c.num_kv_heads * c.head_dim * dtype_size(lm.backend->kv_dtype());
  const double expert_bytes =
      3.0 * c.hidden_size * c.moe_intermediate_size * dtype_size(w.dtype) * c.num_experts * moe_layers;
  auto weight_bytes_read = [&](int batch) {
    if (moe_layers == 0) return w.bytes - embed_bytes;
    const double k = c.num_experts_per_tok, e = c.num_experts;
    const double touched = 1.0 - std::pow(1.0 - k / e, batch);
    return w.bytes - embed_bytes - expert_bytes * (1.0 - touched);
  };
  const uint64_t allocations_before = lm.backend->allocations();
  for (int batch : batches) {
    auto tok_s = measure_decode(m, *lm.backend, batch, prompts[0], a.decode_tokens, leader);
    if (!tok_s.ok()) return report(tok_s.status());
    const double mean_ctx = prompts[0] + a.decode_tokens / 2.0;
    const double step_bytes = weight_bytes_read(batch) + batch * mean_ctx * kv_token_bytes;
    const double steps_s = *tok_s / batch;
    std::printf("  decode batch %3d: %8.1f tok/s  (%.2f ms/step, %.0f GB/s = %.2f of the %s roofline)\n", batch,
                *tok_s, 1e3 / steps_s, step_bytes * steps_s / 1e9, step_bytes * steps_s / bw,
                gpu ? "HBM" : "memory-read");
  }
  std::printf("  allocations: %llu at start, %llu during the decode runs (0 expected)\n",
              static_cast<unsigned long long>(allocations_before),
              static_cast<unsigned long long>(lm.backend->allocations() - allocations_before));
  if (leader != nullptr) {
    if (group.tensor != nullptr) {
      if (Status s = report_all_reduce(m, *group.tensor, *leader, batches); !s.ok()) return report(s);
    }
    Status s = leader->shutdown();
    runtime::exit_rank(s.ok() ? 0 : report(s));  // without the destructors, as the followers leave
  }
  return 0;
}

}  // namespace

void add_bench(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("bench", "Prefill/decode throughput with ratios to the machine's memory bandwidth");
  static BenchArgs a;
  cmd->add_option("MODEL_DIR", a.dir, "Hugging Face model directory (default: a synthetic model)");
  cmd->add_option("--backend", a.backend, "auto|cpu|cuda");
  cmd->add_option("--synthetic", a.synthetic,
                  "Synthetic shape: llama-100m (cpu default), llama3-8b (cuda default), qwen3-8b, qwen3-30b-a3b");
  cmd->add_option("--prompt-tokens", a.prompts,
                  "Prefill lengths, comma-separated (cpu: 256; cuda: 512,2048,8192); the first is the decode context");
  cmd->add_option("--prefill-chunk", a.prefill_chunk, "Tokens per prefill forward (cpu: 512; cuda: 8192)");
  cmd->add_option("--decode-tokens", a.decode_tokens, "Tokens to decode");
  add_dist_flags(cmd, a.dist);
  cmd->add_option("--batches", a.batches, "Decode batch sizes, comma-separated (cpu: 1; cuda: 1,8,32,64,128)");
  cmd->callback([&ctx, cmd] { if (cmd->get_subcommands().empty()) ctx.exit_code = run_bench(a); });
  add_bench_cache(app, ctx);
}

}  // namespace keel::cli
