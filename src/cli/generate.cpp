#include "cli/commands.h"

namespace keel::cli {

void add_generate(CLI::App& app, Context& ctx) {}

}  // namespace keel::cli
