#include <cstdio>
#include <string>

#include "base/log.h"
#include "cli/commands.h"

namespace keel::cli {

int report(const Status& status) {
  std::fprintf(stderr, "error: %s\n", status.message().c_str());
  return 1;
}

// Options of the app (--log-level, --log-format) are accepted after any subcommand's name, however deep.
void fall_through(CLI::App* app) {
  for (CLI::App* sub : app->get_subcommands([](CLI::App*) { return true; })) {
    sub->fallthrough();
    fall_through(sub);
  }
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
  // Logging, for every command: given before or after the subcommand's name, applied before it runs.
  std::string log_level = "info", log_format = "text";
  app.add_option("--log-level", log_level, "Least severe log records written: trace|debug|info|warn|error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))
      ->capture_default_str();
  app.add_option("--log-format", log_format, "Log records as text lines or one JSON object a line: text|json")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  keel::log::configure(keel::log::Level::kInfo, keel::log::Format::kText);
  app.parse_complete_callback([&] {
    keel::log::configure(*keel::log::parse_level(log_level), *keel::log::parse_format(log_format));
  });
  keel::cli::fall_through(&app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  return ctx.exit_code;
}
