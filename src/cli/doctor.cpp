#include "cli/commands.h"

namespace keel::cli {

void add_doctor(CLI::App& app, Context& ctx) {}

}  // namespace keel::cli
