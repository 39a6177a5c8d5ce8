#include "cli/flags.h"

#include <cctype>
#include <cstdlib>

namespace keel::cli {

void add_memory_flags(CLI::App* cmd, runtime::ServeOptions& o) {
  cmd->add_option("--max-model-len", o.max_model_len, "Longest prompt + completion (default: the model's context)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--max-num-seqs", o.max_num_seqs, "Sequences in the running batch")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-num-batched-tokens", o.max_num_batched_tokens, "Tokens per engine step")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--block-size", o.block_size, "Tokens per KV block")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--max-process-memory", o.max_process_memory,
                  "Host memory budget: percent of RAM (80%) or bytes (24GB)")
      ->capture_default_str();
  cmd->add_option("--gpu-memory-utilization", o.gpu_memory_utilization, "Fraction of device memory keel may plan on")
      ->capture_default_str();
  cmd->add_option("--hot-cache-max-size", o.hot_cache_max_size, "Host RAM tier of the prefix cache (bytes: 8GB)")
      ->capture_default_str();
  cmd->add_option("--ssd-cache-dir", o.ssd_cache_dir,
                  "SSD tier of the prefix cache: a directory of segment files, kept across restarts");
  cmd->add_option("--ssd-cache-max-size", o.ssd_cache_max_size, "Cap on the SSD tier's files (bytes: 100GB)")
      ->capture_default_str();
  cmd->add_option("--ssd-write-policy", o.ssd_write_policy,
                  "through: a block goes to the SSD once computed (survives kill -9); back: only what RAM evicts")
      ->check(CLI::IsMember({"through", "back"}))
      ->capture_default_str();
  cmd->add_option("--alloc-log", o.alloc_log, "Append one JSON line per allocation of 64 MiB or more to FILE");
}

void add_dist_flags(CLI::App* cmd, runtime::DistOptions& d) {
  cmd->add_option("--tensor-parallel,--tp", d.tensor_parallel,
                  "Split every layer over N GPUs (N processes, one per GPU; NCCL on CUDA)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--pipeline-parallel,--pp", d.pipeline_parallel, "Split the layers into M stages (M x N processes)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--master-port", d.master_port, "Port the ranks meet on (default: a free one)")
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--dist-timeout", d.timeout_s,
                  "Seconds a step's collectives may take before the group is declared failed")
      ->capture_default_str();
}

Result<std::vector<int32_t>> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (std::isspace(static_cast<unsigned char>(text[i])) || text[i] == ',')) i++;
    if (i >= text.size()) break;
    size_t j = i;
    while (j < text.size() && !std::isspace(static_cast<unsigned char>(text[j])) && text[j] != ',') j++;
    std::string word = text.substr(i, j - i);
    char* end = nullptr;
    long v = std::strtol(word.c_str(), &end, 10);
    if (*end != '\0' || word.empty() || v < 0 || v > INT32_MAX)
      return invalid_argument("token id '{}' is not a non-negative integer (in \"{}\")", word, text);
    ids.push_back(static_cast<int32_t>(v));
    i = j;
  }
  if (ids.empty()) return invalid_argument("no token ids in \"{}\"", text);
  return ids;
}

}  // namespace keel::cli
