#include "cli/commands.h"

namespace keel::cli {

void add_bench(CLI::App& app, Context& ctx) {}

}  // namespace keel::cli
