// Each subcommand lives in its own file and registers itself on the CLI11 app. Its callback stores the
// process exit code in `exit_code`: 0 success, 1 user error (bad input), 2 usage, 3 doctor critical.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "base/status.h"

namespace keel::cli {

struct Context {
  int exit_code = 0;
};

// Prints "error: <message>" to stderr and returns exit code 1.
int report(const Status& status);

void add_info(CLI::App& app, Context& ctx);
void add_logits(CLI::App& app, Context& ctx);
void add_generate(CLI::App& app, Context& ctx);
void add_bench(CLI::App& app, Context& ctx);
void add_bench_serve(CLI::App& app, Context& ctx);  // bench serve (after add_bench)
void add_bench_cache(CLI::App& app, Context& ctx);  // bench cache (from add_bench)
void add_tokenizer_commands(CLI::App& app, Context& ctx);  // tokenize, detokenize
void add_bench_tokenizer(CLI::App& app, Context& ctx);     // bench-tokenizer
void add_template(CLI::App& app, Context& ctx);
void add_run(CLI::App& app, Context& ctx);  // interactive chat
void add_doctor(CLI::App& app, Context& ctx);
void add_serve(CLI::App& app, Context& ctx);  // HTTP server
void add_cache(CLI::App& app, Context& ctx);  // cache ls|stats|verify|clear

}  // namespace keel::cli
