#include <cstdio>

#include "cli/commands.h"

namespace keel::cli {

int report(const Status& status) {
  std::fprintf(stderr, "error: %s\n", status.message().c_str());
  return 1;
}

}  // namespace keel::cli

int main(int argc, char** argv) {
  CLI::App app{"keel: an LLM inference server with a tiered prefix cache and a memory governor"};
  app.require_subcommand(1);
  keel::cli::Context ctx;
  keel::cli::add_info(app, ctx);
  keel::cli::add_logits(app, ctx);
  keel::cli::add_generate(app, ctx);
  keel::cli::add_bench(app, ctx);
  keel::cli::add_bench_serve(app, ctx);
  keel::cli::add_tokenizer_commands(app, ctx);
  keel::cli::add_bench_tokenizer(app, ctx);
  keel::cli::add_template(app, ctx);
  keel::cli::add_run(app, ctx);
  keel::cli::add_doctor(app, ctx);
  keel::cli::add_serve(app, ctx);
  keel::cli::add_cache(app, ctx);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  return ctx.exit_code;
}
