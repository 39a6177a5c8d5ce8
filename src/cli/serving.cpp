#include "cli/serving.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <future>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

#include "base/units.h"
#include "cache/hot_tier.h"
#include "cache/ssd_tier.h"
#include "cli/load_model.h"
#include "engine/engine.h"
#include "engine/fingerprint.h"
#include "format/safetensors.h"
#include "memory/governor.h"
#include "model/config.h"
#include "model/model.h"
#include "model/shard.h"
#include "model/synthetic.h"
#include "model/weights.h"
#include "server/engine_generator.h"
#include "server/server.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/synthetic.h"
#include "tokenizer/tokenizer.h"

#ifdef KEEL_WITH_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace keel::cli {

std::string demo_model_dir() {
  std::error_code ec;
  std::filesystem::path here = std::filesystem::read_symlink("/proc/self/exe", ec);
  for (const std::filesystem::path& p : {std::filesystem::path(KEEL_SOURCE_DIR) / "models" / "demo",
                                         here.parent_path() / ".." / "models" / "demo"}) {
    if (std::filesystem::exists(p / "config.json", ec)) return p.lexically_normal().string();
  }
  return "";
}

// Declared in the order they are built; destroyed in reverse (server before engine before model before backend).
struct Serving::Parts {
  ServeOptions options;
  std::string name;
  std::unique_ptr<memory::Governor> governor;
  std::unique_ptr<backend::Backend> backend;
  RankGroup group;  // rank 0 of a tensor/pipeline-parallel group: its communicators
  std::unique_ptr<model::Model> model;
  std::optional<tokenizer::Tokenizer> tokenizer;
  std::unique_ptr<ChatTemplate> chat_template;
  std::unique_ptr<cache::HotTier> hot_tier;  // outlives the engine, which copies blocks into it
  std::unique_ptr<cache::SsdTier> ssd_tier;  // likewise; destroyed after it, writing the index checkpoint
  std::unique_ptr<engine::StepLeader> leader;  // sends each step's plan to the other ranks
  std::unique_ptr<engine::Engine> engine;
  std::unique_ptr<server::EngineGenerator> generator;
  std::unique_ptr<server::Server> http;
  std::vector<std::string> reserved;  // ledger ids, released by finish()
  int port = 0;
  bool finished = false;
  std::atomic<bool> stopped{false};  // run() returned: the failure watcher ends
};

namespace {

void say(const ServeOptions& o, const std::string& line) {
  if (!o.quiet) std::fprintf(stderr, "%s", line.c_str());
}

// Host RAM from /proc/meminfo: MemTotal and MemAvailable (kB). Unknown values stay 0; make_plan then needs
// --max-process-memory in bytes.
memory::MemoryReport host_memory(env::Env* env) {
  memory::MemoryReport r{"host", 0, 0};
  auto text = env->read_file("/proc/meminfo");
  if (!text.ok()) return r;
  std::istringstream in(*text);
  std::string key;
  uint64_t kb = 0;
  std::string unit;
  while (in >> key >> kb) {
    std::getline(in, unit);
    if (key == "MemTotal:") r.total_bytes = kb * 1024;
    if (key == "MemAvailable:") r.free_bytes = kb * 1024;
  }
  return r;
}

Result<std::optional<memory::MemoryReport>> device_memory(const backend::Backend& b) {
  if (b.name() == "cpu") return std::optional<memory::MemoryReport>();
#ifdef KEEL_WITH_CUDA
  KEEL_ASSIGN_OR_RETURN(backend::CudaMemoryInfo info, backend::cuda_memory_info(0));
  return std::optional<memory::MemoryReport>(memory::MemoryReport{info.name, info.total_bytes, info.free_bytes});
#else
  return unsupported("memory plan: no way to read the memory of backend {}", b.name());
#endif
}

DType dominant_dtype(const format::WeightFiles& files) {
  std::map<DType, uint64_t> bytes;
  for (auto& [name, t] : files.all()) bytes[t->dtype] += t->nbytes();
  DType best = DType::kF32;
  uint64_t most = 0;
  for (auto& [d, n] : bytes)
    if (n > most) most = n, best = d;
  return best;
}

uint64_t saturating_sub(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }

// One decode step before the listener opens: buffers that size themselves on first use do so now, and the
// engine's allocation baseline (allocations_after_warmup) starts from here.
Status warm_up(engine::Engine& engine) {
  engine::Request r;
  r.prompt = {0};
  r.max_tokens = 1;
  r.ignore_eos = true;
  auto done = std::make_shared<std::promise<std::string>>();
  auto future = done->get_future();
  KEEL_ASSIGN_OR_RETURN(uint64_t id, engine.submit(std::move(r), [done](const engine::Event& e) {
                          if (e.finish != engine::FinishReason::kNone) done->set_value(e.error);
                        }));
  (void)id;
  std::string error = future.get();
  if (!error.empty()) return internal_error("warm-up step failed: {}", error);
  return Status();
}

}  // namespace

Result<std::unique_ptr<Serving>> Serving::start(ServeOptions o) {
  env::Env* env = env::Env::posix();
  auto p = std::make_unique<Parts>();
  const bool synthetic = !o.synthetic.empty();
  if (synthetic && !o.dir.empty())
    return invalid_argument("--synthetic {} and MODEL_DIR {}: give one or the other", o.synthetic, o.dir);
  if (synthetic && !o.ssd_cache_dir.empty())
    return invalid_argument("--ssd-cache-dir needs a model directory: a synthetic model's blocks have no weights "
                            "on disk to fingerprint");
  if (!synthetic && o.dir.empty()) {
    o.dir = demo_model_dir();
    if (o.dir.empty()) return not_found("no MODEL_DIR given and the bundled demo model was not found");
  }
  KEEL_ASSIGN_OR_RETURN(model::ModelConfig config,
                        synthetic ? model::synthetic_config(o.synthetic) : model::load_config(env, o.dir));
  const int context = config.max_position_embeddings;
  if (o.max_model_len > context && context > 0) {
    say(o, fmt::format("keel: --max-model-len {} is above the model's context; using {}\n", o.max_model_len, context));
    o.max_model_len = context;
  }
  if (o.max_model_len <= 0) o.max_model_len = context;
  if (o.max_model_len <= 0) return invalid_argument("--max-model-len: the model's config gives no context");
  p->name = o.served_model_name;
  if (p->name.empty() && synthetic) p->name = "synthetic-" + o.synthetic;
  if (p->name.empty()) p->name = std::filesystem::path(o.dir).lexically_normal().filename().string();
  if (p->name.empty()) p->name = std::filesystem::path(o.dir).lexically_normal().parent_path().filename().string();

  // The plan, from the checkpoint's size, the model's shape and what the machine reports, before any weight loads.
  KEEL_ASSIGN_OR_RETURN(p->backend, make_backend(o.backend));
  if (o.rank) {
    // Every rank joins its groups before planning: NCCL's device memory is taken by then, and counted below.
    KEEL_ASSIGN_OR_RETURN(p->group, join_group(*o.rank, o.dist, p->backend.get()));
    say(o, "keel: " + p->group.describe + "\n");
  }
  uint64_t weight_bytes = 0;
  if (synthetic) {
    weight_bytes = model::count_weights(config).parameters * dtype_size(DType::kBF16);
    p->backend->set_weights_dtype(DType::kBF16);
  } else {
    KEEL_ASSIGN_OR_RETURN(format::WeightFiles files, format::WeightFiles::open(env, o.dir));
    weight_bytes = files.total_bytes();
    p->backend->set_weights_dtype(dominant_dtype(files));
  }
  memory::PlanInputs in;
  in.model = p->name;
  in.weight_bytes = weight_bytes;
  in.shape.num_layers = config.num_layers;
  in.shape.num_heads = config.num_heads;
  in.shape.num_kv_heads = config.num_kv_heads;
  in.shape.head_dim = config.head_dim;
  in.shape.hidden_size = config.hidden_size;
  in.shape.intermediate_size = config.intermediate_size > 0 ? config.intermediate_size : config.moe_intermediate_size;
  in.shape.vocab_size = config.vocab_size;
  in.shape.kv_dtype_bytes = static_cast<int>(dtype_size(p->backend->kv_dtype()));
  in.shape.activation_dtype_bytes = static_cast<int>(dtype_size(p->backend->act_dtype()));
  if (o.rank) {
    // Rank 0 plans for every rank: one shard's heads, KV heads and MLP columns, the most layers a stage holds.
    // The KV pool it picks is sent to the others (send_load_options), so all have the same blocks.
    model::ShardSpec spec;
    spec.size = o.dist.tensor_parallel;
    spec.stages = o.dist.pipeline_parallel;
    KEEL_ASSIGN_OR_RETURN(model::ShardLayout layout, model::shard_layout(config, spec));
    const model::ModelConfig local = model::local_config(config, layout);
    // This rank's parameters at the checkpoint's bytes per parameter (stage 0 holds the embedding, so the shares
    // are not equal).
    const double per_parameter = static_cast<double>(weight_bytes) / model::count_weights(config).parameters;
    in.weight_bytes = static_cast<uint64_t>(per_parameter * model::count_weights(config, spec).parameters) + 4096;
    in.shape.num_layers = (config.num_layers + o.dist.pipeline_parallel - 1) / o.dist.pipeline_parallel;
    in.shape.num_heads = local.num_heads;
    in.shape.num_kv_heads = local.num_kv_heads;
    if (config.intermediate_size > 0) in.shape.intermediate_size = local.intermediate_size;
    in.overhead_bytes += p->group.device_bytes;
  }
  in.max_model_len = o.max_model_len;
  in.max_num_seqs = o.max_num_seqs;
  in.max_num_batched_tokens = o.max_num_batched_tokens;
  in.block_size = o.block_size;
  in.max_process_memory = o.max_process_memory;
  in.gpu_memory_utilization = o.gpu_memory_utilization;
  auto hot = parse_bytes(o.hot_cache_max_size);
  if (!hot.ok()) return hot.status().with_context("--hot-cache-max-size");
  in.hot_cache_max_size = *hot;
  if (o.rank && (*hot > 0 || !o.ssd_cache_dir.empty()))
    return unsupported("--hot-cache-max-size and --ssd-cache-dir with --tensor-parallel or --pipeline-parallel: "
                       "every rank holds a slice of each KV block, and the tiers copy whole blocks of one process; "
                       "not supported yet");
  // The SSD tier's write queue is host RAM held for the process's life: planned like the hot tier.
  if (!o.ssd_cache_dir.empty()) in.ssd_queue_blocks = static_cast<int>(cache::SsdTierOptions{}.queue_blocks);
  KEEL_ASSIGN_OR_RETURN(std::optional<memory::MemoryReport> device, device_memory(*p->backend));
  KEEL_ASSIGN_OR_RETURN(memory::Plan plan, memory::make_plan(in, host_memory(env), device));
  say(o, plan.to_table());

  std::unique_ptr<memory::AllocLog> log;
  if (!o.alloc_log.empty()) {
    auto opened = memory::AllocLog::open(env, o.alloc_log);
    if (!opened.ok()) return opened.status().with_context("--alloc-log");
    log = std::move(opened).value();
  }
  p->governor = std::make_unique<memory::Governor>(plan, std::move(log));

  // The model, into exactly what the plan set aside.
  model::LoadOptions lo;
  lo.kv_blocks = plan.kv_blocks;
  lo.block_size = plan.block_size;
  lo.max_batch_tokens = plan.max_num_batched_tokens;
  lo.max_logit_rows = plan.max_logit_rows;
  if (o.rank) {
    lo.communicator = p->group.tensor;
    lo.pipeline = p->group.pipeline;
    KEEL_RETURN_IF_ERROR(send_load_options(*p->group.plans, lo));
  }
  const uint64_t before = p->backend->bytes_allocated();
  if (synthetic) {
    KEEL_ASSIGN_OR_RETURN(p->model, model::Model::synthetic(config, p->backend.get(), lo, 42));
  } else {
    KEEL_ASSIGN_OR_RETURN(p->model, model::Model::load(env, o.dir, p->backend.get(), lo));
  }
  const uint64_t held = p->backend->bytes_allocated() - before;
  // Ranks load in parallel; no step starts before all have (a slow rank is not a hung one).
  if (o.rank) KEEL_RETURN_IF_ERROR(wait_until_loaded(p->group));
  const backend::KvLayout& kv = p->model->kv_layout();
  const uint64_t kv_bytes = static_cast<uint64_t>(kv.num_blocks) * kv.block_size * p->model->kv_bytes_per_token();
  const uint64_t weights = p->model->weights().bytes;
  // The CPU backend reads weights from the mapped checkpoint; a device backend uploads them into its own memory.
  const bool weights_on_backend = p->backend->name() != "cpu";
  // On a device, forward scratch and graph workspaces sit beside the activations; the plan's overhead line is
  // what sets them aside.
  const uint64_t activations = saturating_sub(held, kv_bytes + (weights_on_backend ? weights : 0));
  const uint64_t activations_planned = plan.activation_bytes + (weights_on_backend ? plan.overhead_bytes : 0);
  memory::Governor& gov = *p->governor;
  const std::string by = "keel serve";
  KEEL_RETURN_IF_ERROR(gov.reserve("weights", "weights", plan.weight_bytes, weights,
                                   dtype_name(p->model->weights().dtype), by));
  p->reserved.push_back("weights");
  KEEL_RETURN_IF_ERROR(gov.reserve("activations", "activations", activations_planned, activations,
                                   dtype_name(p->backend->act_dtype()), by));
  p->reserved.push_back("activations");
  KEEL_RETURN_IF_ERROR(gov.reserve("kv_pool", "kv_pool", plan.kv_bytes, kv_bytes, dtype_name(kv.dtype), by));
  p->reserved.push_back("kv_pool");
  if (Status s = gov.check_within_plan(); !s.ok()) say(o, "keel: warning: " + s.message() + "\n");

  auto tok = synthetic ? tokenizer::synthetic_tokenizer(config.vocab_size) : tokenizer::Tokenizer::load(o.dir);
  if (!tok.ok()) return tok.status();
  p->tokenizer.emplace(std::move(tok).value());
  if (synthetic) {
    say(o, "keel: a synthetic model has no chat template; chat routes will answer 400\n");
  } else if (auto t = ChatTemplate::load(o.dir); t.ok()) {
    p->chat_template = std::make_unique<ChatTemplate>(std::move(t).value());
  } else if (t.status().code() == Code::kNotFound) {
    say(o, fmt::format("keel: {}; chat routes will answer 400\n", t.status().message()));
  } else {
    return t.status();
  }

  engine::EngineOptions eo;
  eo.max_num_seqs = o.max_num_seqs;
  eo.max_num_batched_tokens = plan.max_num_batched_tokens;
  eo.max_model_len = o.max_model_len;
  if (*hot > 0) {
    KEEL_ASSIGN_OR_RETURN(p->hot_tier, cache::HotTier::create(*hot, engine::kv_block_bytes(*p->model)));
    KEEL_RETURN_IF_ERROR(gov.reserve("hot_tier", "hot_tier", plan.hot_tier_bytes, p->hot_tier->reserved_bytes(),
                                     dtype_name(kv.dtype), by));
    p->reserved.push_back("hot_tier");
    eo.hot_tier = p->hot_tier.get();
  }
  if (!o.ssd_cache_dir.empty()) {
    auto max = parse_bytes(o.ssd_cache_max_size);
    if (!max.ok()) return max.status().with_context("--ssd-cache-max-size");
    // Blocks on disk outlive this process: they are named by the weights' identity, not only the config's.
    KEEL_ASSIGN_OR_RETURN(eo.fingerprint, engine::weights_fingerprint(env, o.dir, *p->model));
    cache::SsdTierOptions so;
    so.dir = o.ssd_cache_dir;
    so.max_bytes = *max;
    so.max_payload_bytes = engine::kv_block_bytes(*p->model);
    so.fingerprint = eo.fingerprint;
    so.layout = engine::cache_kv_layout(kv);
    auto opened = cache::SsdTier::open(env, so);
    if (!opened.ok()) return opened.status().with_context("--ssd-cache-dir");
    p->ssd_tier = std::move(opened).value();
    const cache::SsdTierStats st = p->ssd_tier->stats();
    say(o, fmt::format("keel: SSD cache {}: {} blocks of this model ({} segments, {} MB) rebuilt in {:.1f} ms{}; "
                       "{} damaged and {} of other models skipped\n",
                       o.ssd_cache_dir, st.blocks, st.segments, st.bytes_on_disk >> 20, st.rebuild_micros / 1000.0,
                       st.segments_from_checkpoint > 0 ? " from the checkpoint" : "", st.skipped_corrupt,
                       st.skipped_other_model));
    eo.ssd_tier = p->ssd_tier.get();
    // The queue's slots, and the scheduler's staging block for reads.
    KEEL_RETURN_IF_ERROR(gov.reserve("ssd_queue", "ssd_queue", plan.ssd_queue_bytes,
                                     p->ssd_tier->queue_bytes() + engine::kv_block_bytes(*p->model),
                                     dtype_name(kv.dtype), by));
    p->reserved.push_back("ssd_queue");
  }
  if (o.rank) {
    p->leader = std::make_unique<engine::StepLeader>(p->group.plans);
    eo.leader = p->leader.get();
  }
  p->engine = std::make_unique<engine::Engine>(p->model.get(), eo);
  KEEL_RETURN_IF_ERROR(warm_up(*p->engine));
  gov.ledger().mark_warm();
  p->generator = std::make_unique<server::EngineGenerator>(p->engine.get(), o.max_model_len);

  server::ServerOptions so;
  so.host = o.host;
  so.port = o.port;
  so.api_key = o.api_key;
  p->http = std::make_unique<server::Server>(
      so, server::ServedModel{p->name, p->generator.get(), &*p->tokenizer, p->chat_template.get()});
  KEEL_ASSIGN_OR_RETURN(p->port, p->http->bind());
  say(o, fmt::format("keel: serving {} ({}, context {}, {} KV blocks of {} tokens) on http://{}:{}\n", p->name,
                     synthetic ? "synthetic " + o.synthetic : o.dir,
                     o.max_model_len, plan.kv_blocks, plan.block_size, o.host, p->port));
  p->options = std::move(o);
  return std::unique_ptr<Serving>(new Serving(std::move(p)));
}

Serving::Serving(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}

Serving::~Serving() {
  if (!parts_->finished) (void)finish();
}

int Serving::port() const { return parts_->port; }
const std::string& Serving::model_name() const { return parts_->name; }
// With a group, a watcher turns an engine failure (a rank died or hung) into a stop: /health answers 503
// "unhealthy" for a moment while the failed requests' errors reach their clients, then the listener closes.
void Serving::run() {
  Parts& p = *parts_;
  std::thread watcher;
  if (p.leader) {
    watcher = std::thread([&p] {
      while (!p.stopped) {
        if (std::string f = p.engine->failure(); !f.empty()) {
          std::fprintf(stderr, "error: %s; /health reports unhealthy, stopping\n", f.c_str());
          std::this_thread::sleep_for(std::chrono::milliseconds(1500));
          p.http->shutdown();
          return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    });
  }
  p.http->run();
  p.stopped = true;
  if (watcher.joinable()) watcher.join();
}

std::string Serving::failure() const { return parts_->engine ? parts_->engine->failure() : ""; }
void Serving::shutdown() { parts_->http->shutdown(); }

Status Serving::finish() {
  Parts& p = *parts_;
  p.finished = true;
  const uint64_t after_warm = p.engine->stats().allocations_after_warmup;
  // Stop the engine before its buffers are released in the ledger.
  p.http.reset();
  p.generator.reset();
  const std::string failure = p.engine->failure();
  p.engine.reset();
  // The followers end with the engine (unless the group failed: then nobody listens).
  if (p.leader && failure.empty()) {
    if (Status s = p.leader->shutdown(); !s.ok()) say(p.options, "keel: warning: " + s.message() + "\n");
  }
  if (p.ssd_tier) {
    const uint64_t blocks = p.ssd_tier->stats().blocks;
    p.ssd_tier.reset();  // writes what is queued, then the index checkpoint
    say(p.options, fmt::format("keel: SSD cache: {} blocks, index checkpoint written\n", blocks));
  }
  memory::Governor& gov = *p.governor;
  for (auto it = p.reserved.rbegin(); it != p.reserved.rend(); ++it) KEEL_RETURN_IF_ERROR(gov.unreserve(*it, "shutdown"));
  p.reserved.clear();
  KEEL_RETURN_IF_ERROR(gov.ledger().check_balanced());
  say(p.options, fmt::format("keel: memory ledger balanced ({} reservations, {} ledger allocations after warm-up, "
                             "{} device allocations after warm-up)\n",
                             gov.ledger().allocations_total(), gov.ledger().allocations_after_warm(), after_warm));
  return Status();
}

}  // namespace keel::cli
