#include "cli/commands.h"

namespace keel::cli {

void add_tokenizer_commands(CLI::App& app, Context& ctx) {}

}  // namespace keel::cli
