#include "cli/commands.h"

namespace keel::cli {

void add_info(CLI::App& app, Context& ctx) {}

}  // namespace keel::cli
