// Flags several subcommands share, and the parsing of their values. Each fills a runtime options struct.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "runtime/launcher.h"
#include "runtime/serving.h"

namespace keel::cli {

// --max-model-len, --max-num-seqs, ... --alloc-log: the flags serve and bench serve share.
void add_memory_flags(CLI::App* cmd, runtime::ServeOptions& options);

// --tensor-parallel, --pipeline-parallel, --master-port, --dist-timeout (serve, bench, logits, generate).
void add_dist_flags(CLI::App* cmd, runtime::DistOptions& d);

// "1 2 3" or "1,2,3" -> ids; names the bad entry.
Result<std::vector<int32_t>> parse_ids(const std::string& text);

}  // namespace keel::cli
