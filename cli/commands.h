#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <string>

namespace voxmamba::cli {

void add_init_command(CLI::App& app);
void add_info_command(CLI::App& app);
void add_forward_command(CLI::App& app);
void add_segment_command(CLI::App& app);  // only in builds with image IO (VOXMAMBA_ITK)
// Records what a subcommand does once its arguments are parsed.
void register_action(const std::string& command, std::function<void()> action);
// Runs the subcommand the user chose; throws on failure.
void run_selected_command(CLI::App& app);

}  // namespace voxmamba::cli
