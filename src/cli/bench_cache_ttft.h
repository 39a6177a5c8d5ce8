// keel bench cache, the tiers under a model: time to first token of one long prompt, cold and warm from each
// tier of the prefix cache, each warm figure against the time its bytes take to move at the bandwidth measured
// in the same run.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "base/status.h"

namespace keel::cli {

struct CacheTtftArgs {
  std::string backend = "cpu";
  std::string synthetic;            // "": llama-tiny on the CPU, llama3-8b on CUDA
  std::vector<int> prompt_tokens;   // default 1024, 8192, 32768
  int max_num_batched_tokens = 0;   // 0: 512 on the CPU, 2048 on CUDA
  std::string dir;                  // an empty directory for the SSD tier's segments
};

// "1k,8k,32k" or "1024,8192": prompt lengths in tokens (k = 1024). Names the bad entry.
Result<std::vector<int>> parse_prompt_lengths(const std::string& text);

// Runs the table (printed as it goes unless `quiet`) and returns it as JSON.
Result<nlohmann::json> run_cache_ttft(const CacheTtftArgs& args, bool quiet);

}  // namespace keel::cli
