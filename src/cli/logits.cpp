// keel logits: the logits at every position of a token sequence, as .npy. With --tensor-parallel or
// --pipeline-parallel the launcher starts the ranks (runtime/launcher.h); rank 0 alone writes the file.
#include "cli/commands.h"
#include "cli/flags.h"
#include "engine/model_runner.h"
#include "runtime/load_model.h"
#include "format/npy.h"

namespace keel::cli {

namespace {

struct LogitsArgs {
  std::string dir, tokens, out, backend = "cpu";
  runtime::DistOptions dist;
};

int run_logits(const LogitsArgs& a) {
  // Bad input is refused before any rank starts.
  auto ids = parse_ids(a.tokens);
  if (!ids.ok()) return report(ids.status().with_context("--tokens"));
  // The launcher of a group, or one of its followers, ends here.
  std::optional<runtime::RankEnv> rank;
  if (std::optional<int> code = runtime::dispatch_model_rank(a.dir, a.backend, a.dist, &rank)) return *code;
  model::LoadOptions options;
  options.max_batch_tokens = std::min<int>(512, static_cast<int>(ids->size()));
  options.kv_blocks = static_cast<int>((ids->size() + options.block_size - 1) / options.block_size);
  auto m = runtime::load_rank_model(a.dir, a.backend, a.dist, rank, options);
  if (!m.ok()) return report(m.status());
  auto logits = engine::all_logits(*m->model, *ids, m->leader.get());
  // A group's rank 0 leaves without its destructors once the followers are told (exit_rank).
  auto done = [&](int code) { return rank ? (runtime::exit_rank(code), code) : code; };
  if (Status s = runtime::end_followers(*m, logits.status()); !s.ok()) return done(report(s));
  const int64_t vocab = m->model->config().vocab_size;
  Status s = format::write_npy(env::Env::posix(), a.out, logits->data(), {static_cast<int64_t>(ids->size()), vocab});
  if (!s.ok()) return done(report(s));
  return done(0);
}

}  // namespace

void add_logits(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("logits", "Write the logits at every position of a token sequence as .npy");
  static LogitsArgs a;
  cmd->add_option("MODEL_DIR", a.dir, "Hugging Face model directory")->required();
  cmd->add_option("--tokens", a.tokens, "Token ids, space-separated")->required();
  cmd->add_option("--out", a.out, "Output .npy file (float32 [n_tokens, vocab])")->required();
  cmd->add_option("--backend", a.backend, "auto|cpu|cuda");
  add_dist_flags(cmd, a.dist);
  cmd->callback([&ctx] { ctx.exit_code = run_logits(a); });
}

}  // namespace keel::cli
