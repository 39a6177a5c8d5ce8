#include "memory/plan.h"

#include <algorithm>
#include <climits>

#include "base/units.h"

namespace keel::memory {

namespace {

Status check_positive(const char* what, int64_t value) {
  if (value <= 0) return invalid_argument("memory plan: {}={} must be positive", what, value);
  return Status();
}

Status validate(const PlanInputs& in) {
  KEEL_RETURN_IF_ERROR(check_positive("--max-model-len", in.max_model_len));
  KEEL_RETURN_IF_ERROR(check_positive("--max-num-seqs", in.max_num_seqs));
  KEEL_RETURN_IF_ERROR(check_positive("--max-num-batched-tokens", in.max_num_batched_tokens));
  KEEL_RETURN_IF_ERROR(check_positive("--block-size", in.block_size));
  const ModelShape& s = in.shape;
  KEEL_RETURN_IF_ERROR(check_positive("num_layers", s.num_layers));
  KEEL_RETURN_IF_ERROR(check_positive("num_heads", s.num_heads));
  KEEL_RETURN_IF_ERROR(check_positive("num_kv_heads", s.num_kv_heads));
  KEEL_RETURN_IF_ERROR(check_positive("head_dim", s.head_dim));
  KEEL_RETURN_IF_ERROR(check_positive("hidden_size", s.hidden_size));
  KEEL_RETURN_IF_ERROR(check_positive("intermediate_size", s.intermediate_size));
  KEEL_RETURN_IF_ERROR(check_positive("vocab_size", s.vocab_size));
  KEEL_RETURN_IF_ERROR(check_positive("kv_dtype_bytes", s.kv_dtype_bytes));
  KEEL_RETURN_IF_ERROR(check_positive("activation_dtype_bytes", s.activation_dtype_bytes));
  if (in.ssd_queue_blocks < 0)
    return invalid_argument("memory plan: ssd_queue_blocks={} must not be negative", in.ssd_queue_blocks);
  return Status();
}

// The budget of one memory: what the flag asks for, capped by what is free right now, so that keel never
// plans on memory another process holds.
struct Budget {
  uint64_t bytes = 0;
  std::string source;
};

Budget cap_by_free(Budget b, const MemoryReport& mem) {
  if (mem.free_bytes > 0 && mem.free_bytes < b.bytes) {
    return {mem.free_bytes, fmt::format("free on {}; {} asks for {}", mem.name, b.source, format_bytes(b.bytes))};
  }
  return b;
}

Result<Budget> host_budget(const PlanInputs& in, const MemoryReport& host) {
  auto parsed = parse_bytes_or_percent(in.max_process_memory, host.total_bytes);
  if (!parsed.ok()) return parsed.status().with_context("--max-process-memory");
  Budget b{*parsed, "--max-process-memory " + in.max_process_memory};
  if (in.max_process_memory.ends_with('%')) b.source += " of " + format_bytes(host.total_bytes);
  if (b.bytes == 0) return invalid_argument("--max-process-memory {}: the budget is 0 bytes", in.max_process_memory);
  return cap_by_free(b, host);
}

Result<Budget> device_budget(const PlanInputs& in, const MemoryReport& device) {
  if (!(in.gpu_memory_utilization > 0 && in.gpu_memory_utilization <= 1))
    return invalid_argument("--gpu-memory-utilization {}: must be in (0, 1]", in.gpu_memory_utilization);
  if (device.total_bytes == 0) return invalid_argument("memory plan: {} reports 0 bytes of memory", device.name);
  Budget b{static_cast<uint64_t>(static_cast<double>(device.total_bytes) * in.gpu_memory_utilization),
           fmt::format("--gpu-memory-utilization {} of {}", in.gpu_memory_utilization,
                       format_bytes(device.total_bytes))};
  return cap_by_free(b, device);
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

uint64_t activation_bytes(const ModelShape& s, int64_t tokens, int64_t logit_rows) {
  const uint64_t q = static_cast<uint64_t>(s.num_heads) * s.head_dim, kv = static_cast<uint64_t>(s.num_kv_heads) * s.head_dim;
  // Per token, always f32: x, o, mlp (hidden each), q, k, v, gate, up; in the backend's activation dtype: h
  // (hidden), attention output (q), activated MLP (intermediate).
  const uint64_t f32 = 3ull * s.hidden_size + q + 2 * kv + 2ull * s.intermediate_size + s.hybrid_f32_cols;
  const uint64_t act = static_cast<uint64_t>(s.hidden_size) + q + s.intermediate_size + s.hybrid_act_cols;
  // Per logit row: the logits (f32) and the head's input logit_in (activation dtype).
  const uint64_t row = 4ull * s.vocab_size + static_cast<uint64_t>(s.hidden_size) * s.activation_dtype_bytes;
  return (f32 * 4 + act * s.activation_dtype_bytes) * static_cast<uint64_t>(tokens) +
         row * static_cast<uint64_t>(logit_rows);
}

uint64_t Plan::main_total() const {
  uint64_t sum = 0;
  for (const auto& l : lines) sum += l.where == main_memory.name ? l.bytes : 0;
  return sum;
}

uint64_t Plan::host_total() const {
  if (!has_device) return main_total();
  uint64_t sum = 0;
  for (const auto& l : lines) sum += l.where != main_memory.name ? l.bytes : 0;
  return sum;
}

Result<Plan> make_plan(const PlanInputs& in, const MemoryReport& host, const std::optional<MemoryReport>& device) {
  KEEL_RETURN_IF_ERROR(validate(in));
  Plan p;
  p.model = in.model;
  p.max_model_len = in.max_model_len;
  p.max_num_seqs = in.max_num_seqs;
  p.max_num_batched_tokens = in.max_num_batched_tokens;
  p.block_size = in.block_size;
  p.has_device = device.has_value();
  p.main_memory = device ? *device : host;

  KEEL_ASSIGN_OR_RETURN(Budget hb, host_budget(in, host));
  p.host_budget = hb.bytes;
  p.host_budget_source = hb.source;
  Budget mb = hb;
  if (device) {
    KEEL_ASSIGN_OR_RETURN(mb, device_budget(in, *device));
  }
  p.main_budget = mb.bytes;
  p.main_budget_source = mb.source;

  p.weight_bytes = in.weight_bytes;
  // A step samples one row per running sequence.
  p.max_logit_rows = std::min(in.max_num_seqs, in.max_num_batched_tokens);
  p.activation_bytes = activation_bytes(in.shape, in.max_num_batched_tokens, p.max_logit_rows);
  p.overhead_bytes = in.overhead_bytes;
  p.hot_tier_bytes = in.hot_cache_max_size;
  p.kv_bytes_per_block = in.shape.kv_bytes_per_token() * static_cast<uint64_t>(in.block_size);
  p.ssd_queue_bytes =
      in.ssd_queue_blocks > 0 ? static_cast<uint64_t>(in.ssd_queue_blocks + 1) * p.kv_bytes_per_block : 0;

  p.http_bytes = in.http_bytes;
  p.recurrent_state_bytes = in.recurrent_state_bytes_per_seq * static_cast<uint64_t>(p.max_logit_rows);

  // Without a device the hot tier, the SSD write queue and HTTP share host RAM with everything else.
  const uint64_t hot_in_main = device ? 0 : p.hot_tier_bytes;
  const uint64_t queue_in_main = device ? 0 : p.ssd_queue_bytes;
  const uint64_t http_in_main = device ? 0 : p.http_bytes;
  const uint64_t fixed =
      p.weight_bytes + p.activation_bytes + p.overhead_bytes + hot_in_main + queue_in_main + http_in_main +
      p.recurrent_state_bytes;
  const int64_t blocks_per_seq = ceil_div(in.max_model_len, in.block_size);
  const int64_t wanted_blocks = std::min<int64_t>(blocks_per_seq * in.max_num_seqs, INT_MAX);
  const uint64_t one_seq = static_cast<uint64_t>(blocks_per_seq) * p.kv_bytes_per_block;
  const char* raise = device ? "--gpu-memory-utilization" : "--max-process-memory";

  if (fixed + one_seq > p.main_budget) {
    std::string terms = fmt::format("weights {} + activations {}", format_bytes(p.weight_bytes),
                                    format_bytes(p.activation_bytes));
    if (hot_in_main > 0) terms += " + hot tier " + format_bytes(hot_in_main);
    if (queue_in_main > 0) terms += " + SSD write queue " + format_bytes(queue_in_main);
    if (http_in_main > 0) terms += " + http " + format_bytes(http_in_main);
    if (p.recurrent_state_bytes > 0) terms += " + recurrent state " + format_bytes(p.recurrent_state_bytes);
    terms += " + overhead " + format_bytes(p.overhead_bytes);
    terms += fmt::format(" + KV for one {}-token sequence {}", in.max_model_len, format_bytes(one_seq));
    std::string advice = p.weight_bytes + p.overhead_bytes > p.main_budget
                             ? fmt::format("the weights alone do not fit; use a smaller model or raise {}", raise)
                             : fmt::format("lower --max-model-len or --max-num-batched-tokens{} or raise {}",
                                           hot_in_main > 0 ? " or --hot-cache-max-size" : "", raise);
    return resource_exhausted("memory plan: {} = {} exceed the budget of {} ({}); {}", terms,
                              format_bytes(fixed + one_seq), format_bytes(p.main_budget), p.main_budget_source,
                              advice);
  }
  if (device && p.hot_tier_bytes + p.ssd_queue_bytes + p.http_bytes > p.host_budget) {
    std::string terms = "hot tier " + format_bytes(p.hot_tier_bytes);
    if (p.ssd_queue_bytes > 0) terms += " + SSD write queue " + format_bytes(p.ssd_queue_bytes);
    if (p.http_bytes > 0) terms += " + http " + format_bytes(p.http_bytes);
    terms += p.ssd_queue_bytes + p.http_bytes == 0
                 ? " exceeds"
                 : " = " + format_bytes(p.hot_tier_bytes + p.ssd_queue_bytes + p.http_bytes) + " exceed";
    return resource_exhausted(
        "memory plan: {} the host budget of {} ({}); lower --hot-cache-max-size or raise --max-process-memory", terms,
        format_bytes(p.host_budget), p.host_budget_source);
  }

  const uint64_t fit = (p.main_budget - fixed) / p.kv_bytes_per_block;
  p.kv_blocks = static_cast<int>(std::min<uint64_t>(fit, static_cast<uint64_t>(wanted_blocks)));
  p.kv_bytes = static_cast<uint64_t>(p.kv_blocks) * p.kv_bytes_per_block;

  const std::string& main = p.main_memory.name;
  const std::string act_dtype = in.shape.activation_dtype_bytes == 4 ? "f32" : "f32 and 16-bit";
  p.lines.push_back({"weights", main, p.weight_bytes, ""});
  p.lines.push_back({"activations", main, p.activation_bytes,
                     fmt::format("{} batched tokens x {} + {} logit rows x {} ({})", in.max_num_batched_tokens,
                                 format_bytes(activation_bytes(in.shape, 1, 0)), p.max_logit_rows,
                                 format_bytes(activation_bytes(in.shape, 0, 1)), act_dtype)});
  p.lines.push_back(
      {"kv pool", main, p.kv_bytes,
       fmt::format("{} blocks x {} tokens = {} tokens, {}/block; {} of {} wanted (--max-num-seqs {} x {})",
                   p.kv_blocks, in.block_size, p.kv_capacity_tokens(), format_bytes(p.kv_bytes_per_block),
                   p.kv_blocks, wanted_blocks, in.max_num_seqs, in.max_model_len)});
  if (p.recurrent_state_bytes > 0)
    p.lines.push_back({"recurrent state", main, p.recurrent_state_bytes,
                       fmt::format("{} sequences x {} (conv and delta-rule state of the linear-attention layers)",
                                   p.max_logit_rows, format_bytes(in.recurrent_state_bytes_per_seq))});
  p.lines.push_back({"hot tier", device ? host.name : main, p.hot_tier_bytes, "--hot-cache-max-size"});
  if (p.ssd_queue_bytes > 0)
    p.lines.push_back({"ssd queue", device ? host.name : main, p.ssd_queue_bytes,
                       fmt::format("{} blocks waiting for the SSD writer + 1 staging block, {}/block (--ssd-cache-dir)",
                                   in.ssd_queue_blocks, format_bytes(p.kv_bytes_per_block))});
  if (p.http_bytes > 0) p.lines.push_back({"http", device ? host.name : main, p.http_bytes, in.http_detail});
  p.lines.push_back({"overhead", main, p.overhead_bytes, device ? "CUDA context, workspaces, runtime" : "runtime"});
  return p;
}

std::string Plan::to_table() const {
  size_t name_w = 5, where_w = 6;
  for (const auto& l : lines) {
    name_w = std::max(name_w, l.name.size());
    where_w = std::max(where_w, l.where.size());
  }
  const size_t bytes_w = 10;
  std::string out = fmt::format("memory plan for {}\n", model.empty() ? "(unnamed model)" : model);
  auto row = [&](const std::string& name, const std::string& where, const std::string& bytes,
                 const std::string& detail) {
    std::string r = fmt::format("  {:<{}}  {:<{}}  {:>{}}  {}", name, name_w, where, where_w, bytes, bytes_w, detail);
    while (!r.empty() && r.back() == ' ') r.pop_back();
    out += r + "\n";
  };
  row("line", "memory", "bytes", "detail");
  for (const auto& l : lines) row(l.name, l.where, format_bytes(l.bytes), l.detail);
  row("total", main_memory.name, format_bytes(main_total()),
      fmt::format("of budget {} ({})", format_bytes(main_budget), main_budget_source));
  if (has_device) {
    row("total", "host", format_bytes(host_total()),
        fmt::format("of budget {} ({})", format_bytes(host_budget), host_budget_source));
  }
  return out;
}

}  // namespace keel::memory
