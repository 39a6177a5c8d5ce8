#include "cli/commands.h"

namespace keel::cli {

void add_template(CLI::App& app, Context& ctx) {}

}  // namespace keel::cli
