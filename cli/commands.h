#pragma once
#include <CLI/CLI.hpp>

namespace voxmamba::cli {

void add_init_command(CLI::App& app);
void add_info_command(CLI::App& app);
void add_forward_command(CLI::App& app);
// Runs the subcommand the user chose; throws on failure.
void run_selected_command(CLI::App& app);

}  // namespace voxmamba::cli
