#include "runtime/serving.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <future>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

#include "backend/registry.h"
#include "base/log.h"
#include "base/units.h"
#include "cache/hot_tier.h"
#include "cache/ssd_tier.h"
#include "runtime/load_model.h"
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

namespace keel::runtime {

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
  model::ModelConfig config;
  uint64_t hot_cache_bytes = 0;  // --hot-cache-max-size, parsed
  memory::Plan plan;
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

// Start-up and shutdown lines: logged, unless the stack runs inside keel bench serve (quiet).
void say(const ServeOptions& options, const std::string& msg) {
  if (!options.quiet) log::info(msg);
}

void warn(const ServeOptions& options, const std::string& msg) {
  if (!options.quiet) log::warn(msg);
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

// The device's memory as its driver reports it now; nullopt for a backend that allocates in host memory.
Result<std::optional<memory::MemoryReport>> device_memory_report(const backend::Backend& b) {
  KEEL_ASSIGN_OR_RETURN(std::optional<backend::DeviceMemory> device, backend::device_memory(b));
  if (!device) return std::optional<memory::MemoryReport>();
  return std::optional<memory::MemoryReport>(memory::MemoryReport{device->name, device->total_bytes, device->free_bytes});
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


bool is_synthetic(const ServeOptions& options) { return !options.synthetic.empty(); }

// MODEL_DIR or --synthetic, not both; neither: the bundled demo model.
Status choose_model(ServeOptions& options) {
  if (options.tool_call_parser != "auto") {
    KEEL_RETURN_IF_ERROR(server::parse_tool_call_format(options.tool_call_parser).status());
  }
  if (options.reasoning_parser != "auto") {
    KEEL_RETURN_IF_ERROR(server::parse_reasoning_format(options.reasoning_parser).status());
  }
  if (is_synthetic(options) && !options.dir.empty())
    return invalid_argument("--synthetic {} and MODEL_DIR {}: give one or the other", options.synthetic, options.dir);
  if (is_synthetic(options) && !options.ssd_cache_dir.empty())
    return invalid_argument("--ssd-cache-dir needs a model directory: a synthetic model's blocks have no weights "
                            "on disk to fingerprint");
  if (!is_synthetic(options) && options.dir.empty()) {
    options.dir = demo_model_dir();
    if (options.dir.empty()) return not_found("no MODEL_DIR given and the bundled demo model was not found");
  }
  return Status();
}

// --max-model-len within the model's context (0: all of it).
Status fit_context(const model::ModelConfig& config, ServeOptions& options) {
  const int context = config.max_position_embeddings;
  if (options.max_model_len > context && context > 0) {
    say(options, fmt::format("--max-model-len {} is above the model's context; using {}",
                             options.max_model_len, context));
    options.max_model_len = context;
  }
  if (options.max_model_len <= 0) options.max_model_len = context;
  if (options.max_model_len <= 0) return invalid_argument("--max-model-len: the model's config gives no context");
  return Status();
}

// --served-model-name, else the synthetic shape, else the directory's name.
std::string served_name(const ServeOptions& options) {
  if (!options.served_model_names.empty()) return options.served_model_names.front();
  if (is_synthetic(options)) return "synthetic-" + options.synthetic;
  const std::filesystem::path dir = std::filesystem::path(options.dir).lexically_normal();
  if (!dir.filename().empty()) return dir.filename().string();
  return dir.parent_path().filename().string();
}

// The checkpoint's bytes, without loading it; the backend learns the dtype its weights will have.
Result<uint64_t> checkpoint_bytes(env::Env* env, const ServeOptions& options, const model::ModelConfig& config,
                                  backend::Backend& backend) {
  if (is_synthetic(options)) {
    backend.set_weights_dtype(DType::kBF16);
    return model::count_weights(config).parameters * dtype_size(DType::kBF16);
  }
  KEEL_ASSIGN_OR_RETURN(format::WeightFiles files, format::WeightFiles::open(env, options.dir));
  backend.set_weights_dtype(files.dominant_dtype());
  // A backend that cannot keep packed weights holds them dequantized, at its compute dtype.
  if (files.quantized() && !backend.keeps_quantized())
    return model::count_weights(config).parameters * dtype_size(backend.act_dtype());
  return files.total_bytes();
}

// Rank 0 plans for every rank: one shard's heads, KV heads and MLP columns, the most layers a stage holds. The
// KV pool it picks is sent to the others (send_load_options), so all have the same blocks.
Status plan_one_shard(const Serving::Parts& parts, uint64_t weight_bytes, memory::PlanInputs& inputs) {
  const DistOptions& dist = parts.options.dist;
  const model::ModelConfig& config = parts.config;
  model::ShardSpec spec;
  spec.size = dist.tensor_parallel;
  spec.stages = dist.pipeline_parallel;
  KEEL_ASSIGN_OR_RETURN(model::ShardLayout layout, model::shard_layout(config, spec));
  const model::ModelConfig local = model::local_config(config, layout);
  // This rank's parameters at the checkpoint's bytes per parameter (stage 0 holds the embedding, so the shares
  // are not equal).
  const double per_parameter = static_cast<double>(weight_bytes) / model::count_weights(config).parameters;
  inputs.weight_bytes = static_cast<uint64_t>(per_parameter * model::count_weights(config, spec).parameters) + 4096;
  inputs.shape.num_layers = (config.num_layers + dist.pipeline_parallel - 1) / dist.pipeline_parallel;
  inputs.shape.num_heads = local.num_heads;
  inputs.shape.num_kv_heads = local.num_kv_heads;
  if (config.intermediate_size > 0) inputs.shape.intermediate_size = local.intermediate_size;
  inputs.overhead_bytes += parts.group.device_bytes;
  return Status();
}

// The plan, from the checkpoint's size, the model's shape and what the machine reports, before any weight loads.
Result<memory::Plan> plan_memory(env::Env* env, Serving::Parts& parts) {
  const ServeOptions& options = parts.options;
  const model::ModelConfig& config = parts.config;
  backend::Backend& backend = *parts.backend;
  KEEL_ASSIGN_OR_RETURN(const uint64_t weight_bytes, checkpoint_bytes(env, options, config, backend));
  memory::PlanInputs inputs;
  inputs.model = parts.name;
  inputs.weight_bytes = weight_bytes;
  // Only attention layers hold KV; a hybrid model's linear-attention layers hold a recurrent state instead.
  inputs.shape.num_layers = config.num_layers - config.num_linear_layers();
  inputs.shape.num_heads = config.num_heads;
  inputs.shape.num_kv_heads = config.num_kv_heads;
  inputs.shape.head_dim = config.head_dim;
  inputs.shape.hidden_size = config.hidden_size;
  inputs.shape.intermediate_size =
      config.intermediate_size > 0 ? config.intermediate_size : config.moe_intermediate_size;
  inputs.shape.vocab_size = config.vocab_size;
  if (config.hybrid()) {
    const model::LinearAttnConfig& l = config.linear;
    inputs.shape.intermediate_size = std::max(config.intermediate_size, config.shared_expert_intermediate_size);
    inputs.shape.hybrid_f32_cols = l.conv_dim() + l.value_dim() + 2 * l.num_v_heads + config.q_size() +
                                   (config.shared_expert_intermediate_size > 0 ? config.hidden_size + 1 : 0);
    inputs.shape.hybrid_act_cols = l.value_dim();
    inputs.recurrent_state_bytes_per_seq = model::recurrent_state_layout(config, 1).total_bytes();
  }
  inputs.shape.kv_dtype_bytes = static_cast<int>(dtype_size(backend.kv_dtype()));
  inputs.shape.activation_dtype_bytes = static_cast<int>(dtype_size(backend.act_dtype()));
  if (options.rank) KEEL_RETURN_IF_ERROR(plan_one_shard(parts, weight_bytes, inputs));
  inputs.max_model_len = options.max_model_len;
  inputs.max_num_seqs = options.max_num_seqs;
  inputs.max_num_batched_tokens = options.max_num_batched_tokens;
  inputs.block_size = options.block_size;
  inputs.max_process_memory = options.max_process_memory;
  inputs.gpu_memory_utilization = options.gpu_memory_utilization;
  inputs.http_bytes = options.http.planned_bytes();
  inputs.http_detail = options.http.plan_detail();
  auto hot = parse_bytes(options.hot_cache_max_size);
  if (!hot.ok()) return hot.status().with_context("--hot-cache-max-size");
  parts.hot_cache_bytes = *hot;
  inputs.hot_cache_max_size = *hot;
  if (options.rank && (*hot > 0 || !options.ssd_cache_dir.empty()))
    return unsupported("--hot-cache-max-size and --ssd-cache-dir with --tensor-parallel or --pipeline-parallel: "
                       "every rank holds a slice of each KV block, and the tiers copy whole blocks of one process; "
                       "not supported yet");
  // The SSD tier's write queue is host RAM held for the process's life: planned like the hot tier.
  if (!options.ssd_cache_dir.empty()) inputs.ssd_queue_blocks = static_cast<int>(cache::SsdTierOptions{}.queue_blocks);
  KEEL_ASSIGN_OR_RETURN(std::optional<memory::MemoryReport> device, device_memory_report(backend));
  return memory::make_plan(inputs, host_memory(env), device);
}

// The Governor holds the plan; --alloc-log names the file its large allocations are logged to.
Result<std::unique_ptr<memory::Governor>> make_governor(env::Env* env, const ServeOptions& options,
                                                        const memory::Plan& plan) {
  std::unique_ptr<memory::AllocLog> alloc_log;
  if (!options.alloc_log.empty()) {
    auto opened = memory::AllocLog::open(env, options.alloc_log);
    if (!opened.ok()) return opened.status().with_context("--alloc-log");
    alloc_log = std::move(opened).value();
  }
  return std::make_unique<memory::Governor>(plan, std::move(alloc_log));
}

Status reserve(Serving::Parts& parts, const std::string& what, uint64_t planned, uint64_t actual, DType dtype) {
  KEEL_RETURN_IF_ERROR(parts.governor->reserve(what, what, planned, actual, dtype_name(dtype), "keel serve"));
  parts.reserved.push_back(what);
  return Status();
}

// The model, into exactly what the plan set aside; then what it holds is reserved against the plan's lines.
Status load_model_into_plan(env::Env* env, Serving::Parts& parts) {
  const ServeOptions& options = parts.options;
  const memory::Plan& plan = parts.plan;
  model::LoadOptions load;
  load.kv_blocks = plan.kv_blocks;
  load.block_size = plan.block_size;
  load.max_batch_tokens = plan.max_num_batched_tokens;
  load.max_logit_rows = plan.max_logit_rows;
  if (options.rank) {
    load.communicator = parts.group.tensor;
    load.pipeline = parts.group.pipeline;
    KEEL_RETURN_IF_ERROR(send_load_options(*parts.group.plans, load));
  }
  backend::Backend& backend = *parts.backend;
  const uint64_t before = backend.bytes_allocated();
  if (is_synthetic(options)) {
    KEEL_ASSIGN_OR_RETURN(parts.model, model::Model::synthetic(parts.config, &backend, load, 42));
  } else {
    KEEL_ASSIGN_OR_RETURN(parts.model, model::Model::load(env, options.dir, &backend, load));
  }
  const uint64_t held = backend.bytes_allocated() - before;
  // Ranks load in parallel; no step starts before all have (a slow rank is not a hung one).
  if (options.rank) KEEL_RETURN_IF_ERROR(wait_until_loaded(parts.group));

  const model::Model& model = *parts.model;
  const backend::KvLayout& kv = model.kv_layout();
  const uint64_t kv_bytes = static_cast<uint64_t>(kv.num_blocks) * kv.block_size * model.kv_bytes_per_token();
  const uint64_t weights = model.weights().bytes;
  // The CPU backend reads weights from the mapped checkpoint; a device backend uploads them into its own memory.
  const bool weights_on_backend = backend.name() != "cpu";
  // On a device, forward scratch and graph workspaces sit beside the activations; the plan's overhead line is
  // what sets them aside.
  const uint64_t activations =
      saturating_sub(held, kv_bytes + model.recurrent_state_bytes() + (weights_on_backend ? weights : 0));
  const uint64_t activations_planned = plan.activation_bytes + (weights_on_backend ? plan.overhead_bytes : 0);
  KEEL_RETURN_IF_ERROR(reserve(parts, "weights", plan.weight_bytes, weights, model.weights().dtype));
  KEEL_RETURN_IF_ERROR(reserve(parts, "activations", activations_planned, activations, backend.act_dtype()));
  KEEL_RETURN_IF_ERROR(reserve(parts, "kv_pool", plan.kv_bytes, kv_bytes, kv.dtype));
  if (model.recurrent_state_bytes() > 0)
    KEEL_RETURN_IF_ERROR(reserve(parts, "recurrent_state", plan.recurrent_state_bytes, model.recurrent_state_bytes(),
                                 DType::kF32));
  if (Status s = parts.governor->check_within_plan(); !s.ok()) warn(options, s.message());
  return Status();
}

// The tokenizer, and the chat template when the model has one (without it the chat routes answer 400).
Status load_tokenizer(Serving::Parts& parts) {
  const ServeOptions& options = parts.options;
  auto tokenizer = is_synthetic(options) ? tokenizer::synthetic_tokenizer(parts.config.vocab_size)
                                         : tokenizer::Tokenizer::load(options.dir);
  if (!tokenizer.ok()) return tokenizer.status();
  parts.tokenizer.emplace(std::move(tokenizer).value());
  if (is_synthetic(options)) {
    say(options, "a synthetic model has no chat template; chat routes will answer 400");
    return Status();
  }
  auto chat_template = ChatTemplate::load(options.dir);
  if (chat_template.ok()) {
    parts.chat_template = std::make_unique<ChatTemplate>(std::move(chat_template).value());
  } else if (chat_template.status().code() == Code::kNotFound) {
    say(options, fmt::format("{}; chat routes will answer 400", chat_template.status().message()));
  } else {
    return chat_template.status();
  }
  return Status();
}

// --hot-cache-max-size: the host RAM tier below the device's KV pool.
Status open_hot_tier(Serving::Parts& parts, engine::EngineOptions& engine_options) {
  if (parts.hot_cache_bytes == 0) return Status();
  const model::Model& model = *parts.model;
  KEEL_ASSIGN_OR_RETURN(parts.hot_tier, cache::HotTier::create(parts.hot_cache_bytes, engine::kv_block_bytes(model)));
  KEEL_RETURN_IF_ERROR(reserve(parts, "hot_tier", parts.plan.hot_tier_bytes, parts.hot_tier->reserved_bytes(),
                               model.kv_layout().dtype));
  engine_options.hot_tier = parts.hot_tier.get();
  return Status();
}

// --ssd-cache-dir: the SSD tier below the hot tier, its index rebuilt from the segments there.
Status open_ssd_tier(env::Env* env, Serving::Parts& parts, engine::EngineOptions& engine_options) {
  const ServeOptions& options = parts.options;
  if (options.ssd_cache_dir.empty()) return Status();
  const model::Model& model = *parts.model;
  auto max_bytes = parse_bytes(options.ssd_cache_max_size);
  if (!max_bytes.ok()) return max_bytes.status().with_context("--ssd-cache-max-size");
  // Blocks on disk outlive this process: they are named by the weights' identity, not only the config's.
  KEEL_ASSIGN_OR_RETURN(engine_options.fingerprint, engine::weights_fingerprint(env, options.dir, model));
  cache::SsdTierOptions tier_options;
  tier_options.dir = options.ssd_cache_dir;
  tier_options.max_bytes = *max_bytes;
  tier_options.max_payload_bytes = engine::kv_block_bytes(model);
  tier_options.fingerprint = engine_options.fingerprint;
  tier_options.layout = engine::cache_kv_layout(model.kv_layout());
  auto opened = cache::SsdTier::open(env, tier_options);
  if (!opened.ok()) return opened.status().with_context("--ssd-cache-dir");
  parts.ssd_tier = std::move(opened).value();
  const cache::SsdTierStats st = parts.ssd_tier->stats();
  say(options, fmt::format("SSD cache {}: {} blocks of this model ({} segments, {} MB) rebuilt in {:.1f} ms{}; "
                           "{} damaged and {} of other models skipped",
                           options.ssd_cache_dir, st.blocks, st.segments, st.bytes_on_disk >> 20,
                           st.rebuild_micros / 1000.0, st.segments_from_checkpoint > 0 ? " from the checkpoint" : "",
                           st.skipped_corrupt, st.skipped_other_model));
  engine_options.ssd_tier = parts.ssd_tier.get();
  engine_options.ssd_write_policy =
      options.ssd_write_policy == "back" ? cache::SsdWritePolicy::kBack : cache::SsdWritePolicy::kThrough;
  // A clean shutdown (SIGTERM) writes what the device and host RAM cache but the disk lacks, then the tier's
  // destructor drains its queue and writes the index checkpoint.
  engine_options.persist_cache_on_shutdown = true;
  // The queue's slots, and the block manager's staging block (SSD reads, write-through copies).
  return reserve(parts, "ssd_queue", parts.plan.ssd_queue_bytes,
                 parts.ssd_tier->queue_bytes() + engine::kv_block_bytes(model), model.kv_layout().dtype);
}

// The engine over the loaded model and the tiers, warmed up: from here on the ledger counts allocations as
// steady-state ones.
Status start_engine(Serving::Parts& parts, engine::EngineOptions engine_options) {
  const ServeOptions& options = parts.options;
  engine_options.max_num_seqs = options.max_num_seqs;
  engine_options.max_num_batched_tokens = parts.plan.max_num_batched_tokens;
  engine_options.max_model_len = options.max_model_len;
  if (options.rank) {
    parts.leader = std::make_unique<engine::StepLeader>(parts.group.plans);
    engine_options.leader = parts.leader.get();
  }
  parts.engine = std::make_unique<engine::Engine>(parts.model.get(), engine_options);
  KEEL_RETURN_IF_ERROR(warm_up(*parts.engine));
  parts.governor->ledger().mark_warm();
  return Status();
}

// The HTTP server over the engine, bound (port 0 picks a free one) but not yet serving.
Status bind_server(Serving::Parts& parts) {
  const ServeOptions& options = parts.options;
  parts.generator = std::make_unique<server::EngineGenerator>(parts.engine.get());
  server::ServerOptions server_options;
  server_options.host = options.host;
  server_options.port = options.port;
  server_options.api_key = options.api_key;
  server_options.max_concurrent = options.max_concurrent_requests;
  server_options.http = options.http;
  server_options.sse_keepalive = std::chrono::seconds(options.sse_keepalive_s);
  server::ServedModel model{parts.name, parts.generator.get(), &*parts.tokenizer, parts.chat_template.get()};
  // Names were checked by choose_model; "auto" leaves the formats to the server, which reads the template.
  if (options.tool_call_parser != "auto") model.tool_call_format = *server::parse_tool_call_format(options.tool_call_parser);
  if (options.reasoning_parser != "auto") model.reasoning_format = *server::parse_reasoning_format(options.reasoning_parser);
  for (size_t i = 1; i < options.served_model_names.size(); ++i) model.aliases.push_back(options.served_model_names[i]);
  parts.http = std::make_unique<server::Server>(server_options, std::move(model));
  KEEL_ASSIGN_OR_RETURN(parts.port, parts.http->bind());
  say(options, fmt::format("tool calls: {}, reasoning: {}{}", server::tool_call_format_name(parts.http->tool_call_format()),
                           server::reasoning_format_name(parts.http->reasoning_format()),
                           options.tool_call_parser == "auto" ? " (from the chat template)" : ""));
  return Status();
}

}  // namespace

Result<std::unique_ptr<Serving>> Serving::start(ServeOptions options) {
  env::Env* env = env::Env::posix();
  auto parts = std::make_unique<Parts>();
  KEEL_RETURN_IF_ERROR(choose_model(options));
  KEEL_ASSIGN_OR_RETURN(parts->config, is_synthetic(options) ? model::synthetic_config(options.synthetic)
                                                              : model::load_config(env, options.dir));
  KEEL_RETURN_IF_ERROR(fit_context(parts->config, options));
  parts->name = served_name(options);
  parts->options = std::move(options);
  const ServeOptions& o = parts->options;

  KEEL_ASSIGN_OR_RETURN(parts->backend, backend::create(o.backend));
  if (o.rank) {
    // Every rank joins its groups before planning: NCCL's device memory is taken by then, and counted in the plan.
    KEEL_ASSIGN_OR_RETURN(parts->group, join_group(*o.rank, o.dist, parts->backend.get()));
    say(o, parts->group.describe);
  }
  KEEL_ASSIGN_OR_RETURN(parts->plan, plan_memory(env, *parts));
  // The plan's table is output, not a log record (docs/MEMORY.md): the same text whatever --log-format says.
  if (!o.quiet) std::fputs(parts->plan.to_table().c_str(), stderr);
  KEEL_ASSIGN_OR_RETURN(parts->governor, make_governor(env, o, parts->plan));
  KEEL_RETURN_IF_ERROR(load_model_into_plan(env, *parts));
  KEEL_RETURN_IF_ERROR(load_tokenizer(*parts));
  engine::EngineOptions engine_options;
  KEEL_RETURN_IF_ERROR(open_hot_tier(*parts, engine_options));
  KEEL_RETURN_IF_ERROR(open_ssd_tier(env, *parts, engine_options));
  KEEL_RETURN_IF_ERROR(start_engine(*parts, std::move(engine_options)));
  KEEL_RETURN_IF_ERROR(bind_server(*parts));
  say(o, fmt::format("serving {} ({}, context {}, {} KV blocks of {} tokens) on http://{}:{}", parts->name,
                     is_synthetic(o) ? "synthetic " + o.synthetic : o.dir, o.max_model_len, parts->plan.kv_blocks,
                     parts->plan.block_size, o.host, parts->port));
  return std::unique_ptr<Serving>(new Serving(std::move(parts)));
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
          log::error(f + "; /health reports unhealthy, stopping");
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
    if (Status s = p.leader->shutdown(); !s.ok()) warn(p.options, s.message());
  }
  if (p.ssd_tier) {
    const uint64_t blocks = p.ssd_tier->stats().blocks;
    p.ssd_tier.reset();  // writes what is queued, then the index checkpoint
    say(p.options, fmt::format("SSD cache: {} blocks, index checkpoint written", blocks));
  }
  memory::Governor& gov = *p.governor;
  for (auto it = p.reserved.rbegin(); it != p.reserved.rend(); ++it) KEEL_RETURN_IF_ERROR(gov.unreserve(*it, "shutdown"));
  p.reserved.clear();
  KEEL_RETURN_IF_ERROR(gov.ledger().check_balanced());
  say(p.options, fmt::format("memory ledger balanced ({} reservations, {} ledger allocations after warm-up, "
                             "{} device allocations after warm-up)",
                             gov.ledger().allocations_total(), gov.ledger().allocations_after_warm(), after_warm));
  return Status();
}

}  // namespace keel::runtime
