// voxmamba: the command line. Each subcommand only parses its arguments and calls the
// pipeline; every error becomes one line "voxmamba: error: <file>: <problem>" and exit 1.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>

#include "cli/commands.h"
#include "core/error.h"
#include "core/thread_pool.h"

int main(int argc, char** argv) {
  CLI::App app{"VoxMamba: 3D medical image segmentation with a Vision-Mamba network.", "voxmamba"};
  app.require_subcommand(1);
  app.footer(
      "Examples:\n"
      "  voxmamba init --config small --classes 3 --seed 1 -o model.h5\n"
      "  voxmamba info model.h5 --json\n"
      "  voxmamba forward --weights model.h5 --input image.npy --output logits.npy\n"
      "  voxmamba segment -i scan.nii.gz -o seg.nii.gz -m model.h5\n"
      "Run 'voxmamba COMMAND --help' for a command's options.");
  int threads = 0;
  app.add_option("--threads", threads, "CPU threads (default: VOXMAMBA_NUM_THREADS or all cores)")
      ->check(CLI::Range(1, 1024));

  voxmamba::cli::add_init_command(app);
  voxmamba::cli::add_info_command(app);
  voxmamba::cli::add_forward_command(app);
#ifdef VOXMAMBA_HAVE_ITK
  voxmamba::cli::add_segment_command(app);
#endif

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& help) {
    return app.exit(help);
  } catch (const CLI::CallForAllHelp& help) {
    return app.exit(help);
  } catch (const CLI::ParseError& error) {
    // One line, like every other error; exit 2 marks a usage error.
    std::fprintf(stderr, "voxmamba: error: %s (see 'voxmamba --help')\n", error.what());
    return 2;
  }
  try {
    if (threads > 0) voxmamba::set_thread_count(threads);
    voxmamba::cli::run_selected_command(app);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "voxmamba: error: %s\n", error.what());
    return 1;
  }
  return 0;
}
