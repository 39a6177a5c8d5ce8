// The memory plan: what keel will hold for the whole life of the process, computed once at start from the
// flags, the model's shape and what the machine reports. Either everything fits and is reserved up front, or
// keel refuses to start with the numbers that do not add up.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace keel::memory {

// The parts of a model's shape that size its buffers.
struct ModelShape {
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int hidden_size = 0;
  int intermediate_size = 0;  // the widest MLP (for MoE: the widest one the backend allocates per token)
  int vocab_size = 0;
  int kv_dtype_bytes = 4;          // bytes per KV element (f32 on the CPU backend)
  int activation_dtype_bytes = 4;  // bytes per element of Backend::act_dtype() buffers (f32 on the CPU backend)
  // Hybrid models' scratch per token (model/gated_deltanet.h's HybridWorkspace): f32 and activation-dtype columns.
  int hybrid_f32_cols = 0;
  int hybrid_act_cols = 0;

  // K and V of one token across all layers.
  uint64_t kv_bytes_per_token() const {
    return 2ull * num_layers * num_kv_heads * head_dim * kv_dtype_bytes;
  }
};

// Total and free bytes of one memory, as the OS or the driver reports them. free_bytes == 0 means unknown.
struct MemoryReport {
  std::string name;  // "host", "cuda:0 (NVIDIA H100)"
  uint64_t total_bytes = 0;
  uint64_t free_bytes = 0;
};

inline constexpr uint64_t kDefaultOverheadBytes = 512ull << 20;

struct PlanInputs {
  std::string model;  // for messages and the alloc log
  uint64_t weight_bytes = 0;
  ModelShape shape;
  int max_model_len = 0;
  int max_num_seqs = 0;
  int max_num_batched_tokens = 0;
  int block_size = 16;
  std::string max_process_memory = "80%";  // flag text: percent of host RAM, or bytes ("24GB")
  double gpu_memory_utilization = 0.9;     // fraction of device memory; used only with a device
  uint64_t hot_cache_max_size = 0;         // host RAM tier of the prefix cache
  // The SSD tier's write queue (--ssd-cache-dir), in KV blocks; 0 without an SSD tier. Host RAM, held for the
  // process's life: the queued blocks plus one staging block for reads.
  int ssd_queue_blocks = 0;
  // The HTTP layer's most (server::HttpLimits::planned_bytes(): open connections x their buffers + request bodies
  // in flight x the work they take to parse), host RAM; its limits refuse a request rather than exceed it.
  uint64_t http_bytes = 0;
  std::string http_detail;
  // The runtime beside the tensors (allocator slack, tokenizer, HTTP buffers; on a GPU the CUDA context and
  // the cuBLAS workspace). Counted in the same memory as the weights.
  uint64_t overhead_bytes = kDefaultOverheadBytes;
  // Hybrid models: one sequence's recurrent state over all linear-attention layers (conv history and delta-rule
  // state); the pool holds one per sequence a step can sample (max_logit_rows), as Model::init_buffers does.
  uint64_t recurrent_state_bytes_per_seq = 0;
};

struct PlanLine {
  std::string name;   // "weights", "activations", "kv pool", "hot tier", "ssd queue", "overhead"
  std::string where;  // the MemoryReport name it lives in
  uint64_t bytes = 0;
  std::string detail;
};

struct Plan {
  std::string model;
  int max_model_len = 0;
  int max_num_seqs = 0;
  int max_num_batched_tokens = 0;
  int max_logit_rows = 0;  // min(max_num_seqs, max_num_batched_tokens): the model's logits buffers
  int block_size = 0;

  uint64_t weight_bytes = 0;
  uint64_t activation_bytes = 0;
  uint64_t kv_bytes_per_block = 0;
  int kv_blocks = 0;
  uint64_t kv_bytes = 0;
  uint64_t hot_tier_bytes = 0;
  uint64_t ssd_queue_bytes = 0;  // (ssd_queue_blocks + 1) x kv_bytes_per_block
  uint64_t recurrent_state_bytes = 0;  // max_logit_rows x recurrent_state_bytes_per_seq
  uint64_t http_bytes = 0;
  uint64_t overhead_bytes = 0;

  // The memory that holds weights, activations and KV (the device, or the host on the CPU backend), and the
  // host memory (the same one on the CPU backend).
  MemoryReport main_memory;
  uint64_t main_budget = 0;
  std::string main_budget_source;  // "--max-process-memory 80% of 62.0 GiB"
  uint64_t host_budget = 0;
  std::string host_budget_source;
  bool has_device = false;

  std::vector<PlanLine> lines;

  // Tokens the KV pool can hold at once, across all sequences.
  int64_t kv_capacity_tokens() const { return static_cast<int64_t>(kv_blocks) * block_size; }
  uint64_t main_total() const;  // bytes planned in the main memory
  uint64_t host_total() const;  // bytes planned in host memory

  // The plan as an aligned table, one line per buffer and one per budget.
  std::string to_table() const;
};

// Activation buffers for a batch of `tokens` rows of which `logit_rows` ask for logits, as Model::init_buffers
// allocates them: per token the residual stream, q/k/v, attention output and MLP gate/up/activated; per logit row
// the head's input and the logits. Governor::reserve refuses a drift over 1%.
uint64_t activation_bytes(const ModelShape& shape, int64_t tokens, int64_t logit_rows);

// Computes the plan. `host` is the machine's RAM; `device` is the accelerator's memory when a GPU backend runs
// (weights, activations and KV then live there, under --gpu-memory-utilization). Fails with kInvalidArgument on a
// bad flag and kResourceExhausted, naming every number, when one max_model_len sequence cannot fit.
Result<Plan> make_plan(const PlanInputs& in, const MemoryReport& host, const std::optional<MemoryReport>& device);

}  // namespace keel::memory
