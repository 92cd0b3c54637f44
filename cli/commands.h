#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <string>

namespace voxmamba::cli {

// --precision's help, shared by forward and segment (pipeline::choose_precision reads it).
inline constexpr const char* kPrecisionHelp =
    "auto (bf16 on a GPU, fp32 on the CPU), fp32, bf16 or fp16 (GPU only, fp32 accumulation; "
    "fp16 rounds 8x finer than bf16 but overflows above 65504)";

void add_init_command(CLI::App& app);
void add_info_command(CLI::App& app);
void add_forward_command(CLI::App& app);
void add_segment_command(CLI::App& app);  // only in builds with image IO (VOXMAMBA_ITK)
// Records what a subcommand does once its arguments are parsed.
void register_action(const std::string& command, std::function<void()> action);
// Runs the subcommand the user chose; throws on failure.
void run_selected_command(CLI::App& app);

}  // namespace voxmamba::cli
