#include "cli/commands.h"

namespace keel::cli {

void add_logits(CLI::App& app, Context& ctx) {}

}  // namespace keel::cli
