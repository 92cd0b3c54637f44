#include "cli/commands.h"

#include <cstdio>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>

#include "core/thread_pool.h"
#include "pipeline/describe.h"
#include "pipeline/forward_job.h"
#include "pipeline/model_store.h"

namespace voxmamba::cli {
namespace {

// What each subcommand does once parsed, keyed by the subcommand's name.
std::map<std::string, std::function<void()>>& actions() {
  static std::map<std::string, std::function<void()>> table;
  return table;
}

struct InitOptions {
  std::string config = "small", output;
  int classes = 0;
  pipeline::CreateOptions create;
  std::vector<std::int64_t> patch_size;
  std::vector<double> spacing;
} init_options;

struct InfoOptions {
  std::string path;
  bool json = false;
} info_options;

struct ForwardOptions {
  std::string weights, input, output, device = "auto", precision = "auto";
  bool quiet = false;
} forward_options;

void print_description_text(const std::string& path, const pipeline::ModelDescription& d) {
  const models::NetworkConfig& c = d.config;
  std::printf("%s: VoxMamba model\n", path.c_str());
  std::printf("  in_channels %d, num_classes %d, dims [%d, %d, %d, %d], depths [%d, %d, %d, %d], hidden %d\n",
              c.in_channels, c.num_classes, c.dims[0], c.dims[1], c.dims[2], c.dims[3], c.depths[0], c.depths[1],
              c.depths[2], c.depths[3], c.hidden);
  std::printf("  d_state %d, d_conv %d, expand %d, deformable [%s, %s, %s, %s]\n", c.d_state, c.d_conv, c.expand,
              c.deformable[0] ? "true" : "false", c.deformable[1] ? "true" : "false",
              c.deformable[2] ? "true" : "false", c.deformable[3] ? "true" : "false");
  std::printf("  parameters per module:\n");
  for (const auto& [module, count] : d.modules) std::printf("    %-22s %12lld\n", module.c_str(), static_cast<long long>(count));
  std::printf("  parameters total:        %12lld\n", static_cast<long long>(d.parameters));
}

}  // namespace

void add_init_command(CLI::App& app) {
  CLI::App* command = app.add_subcommand("init", "Create a model file with seeded random weights (network.md init)");
  command->add_option("--config", init_options.config, "small, base, or a JSON file with the network keys")
      ->capture_default_str();
  command->add_option("--classes", init_options.classes, "output classes, background included")
      ->check(CLI::Range(1, 1024));
  command->add_option("--seed", init_options.create.seed, "random seed; the same seed gives identical weights")
      ->capture_default_str();
  command->add_option("-o,--output", init_options.output, "model file to write (HDF5)")->required();
  command->add_flag("--force", init_options.create.overwrite, "replace the output file if it exists");
  command->add_option("--offset-scale", init_options.create.offset_scale,
                      "initialise the deformable offset heads uniformly in [-S, S] instead of zero "
                      "(for testing the deformable path; untrained models use 0)")
      ->check(CLI::Range(0.0, 10.0));
  command->add_option("--patch-size", init_options.patch_size,
                      "sliding-window patch D H W for segment (multiples of 16; default 128 128 128)")
      ->expected(3);
  command->add_option("--spacing", init_options.spacing,
                      "target spacing X Y Z in mm that segment resamples to (default 1 1 1)")
      ->expected(3);
  command->footer("Example: voxmamba init --config small --classes 3 --seed 1 -o model.h5");
  actions()["init"] = [] {
    const models::NetworkConfig config = pipeline::resolve_config(init_options.config, init_options.classes);
    if (init_options.spacing.size() == 3) {
      std::copy(init_options.spacing.begin(), init_options.spacing.end(), init_options.create.spacing.begin());
    }
    if (init_options.patch_size.size() == 3) {
      std::copy(init_options.patch_size.begin(), init_options.patch_size.end(), init_options.create.patch_size.begin());
    }
    pipeline::create_model_file(init_options.output, config, init_options.create);
    std::printf("%s: %lld parameters\n", init_options.output.c_str(),
                static_cast<long long>(models::parameter_count(config)));
  };
}

void add_info_command(CLI::App& app) {
  CLI::App* command = app.add_subcommand(
      "info", "Describe a model file (config, parameter counts) or an image / DICOM folder (geometry, range)");
  command->add_option("path", info_options.path, "model file (HDF5), image file (NIfTI, NRRD, MHA) or DICOM folder")
      ->required();
  command->add_flag("--json", info_options.json,
                    "print JSON (model: path, config, modules, parameters; image: size, spacing, origin, "
                    "direction, pixel_type, min, max, series)");
  command->footer(
      "Sizes, spacing and origin are in (x, y, z) order, in mm, in the LPS frame; direction is the 3x3\n"
      "matrix of the axes' directions (column c = axis c), row-major.\n"
      "Examples: voxmamba info model.h5 --json\n"
      "          voxmamba info scan.nii.gz\n"
      "          voxmamba info dicom_folder/ --json");
  actions()["info"] = [] {
    if (pipeline::is_model_file(info_options.path) && !info_options.json) {
      print_description_text(info_options.path, pipeline::describe_model_file(info_options.path));
      return;
    }
    const nlohmann::json description = pipeline::describe_path(info_options.path);
    if (info_options.json) {
      std::printf("%s\n", description.dump(2).c_str());
      return;
    }
    for (const auto& [key, value] : description.items()) std::printf("%-11s %s\n", (key + ":").c_str(), value.dump().c_str());
  };
}

void add_forward_command(CLI::App& app) {
  CLI::App* command = app.add_subcommand(
      "forward", "Run the network on a raw N D H W C float32 NPY array and write the logits as NPY");
  command->add_option("--weights", forward_options.weights, "model file (HDF5)")->required();
  command->add_option("--input", forward_options.input, "input array, float32 [N, D, H, W, C], D/H/W multiples of 16")
      ->required();
  command->add_option("--output", forward_options.output, "logits to write, float32 [N, D, H, W, classes]")
      ->required();
  command->add_option("--device", forward_options.device, "auto (the GPU when one is usable), cpu, cuda or cuda:N")
      ->capture_default_str();
  command->add_option("--precision", forward_options.precision,
                      kPrecisionHelp)
      ->capture_default_str();
  command->add_flag("--quiet", forward_options.quiet, "print nothing on success");
  command->footer("Example: voxmamba forward --weights model.h5 --input image.npy --output logits.npy");
  actions()["forward"] = [] {
    pipeline::ForwardRequest request{forward_options.weights, forward_options.input, forward_options.output,
                                     forward_options.device, forward_options.precision};
    const pipeline::ForwardResult result = pipeline::run_forward(request);
    if (!forward_options.quiet) {
      const std::string where = result.device.is_cpu()
                                    ? std::to_string(thread_pool().size()) + " CPU threads"
                                    : result.device.name() + " in " + dtype_name(result.precision);
      std::fprintf(stderr, "%s: logits %s in %.2f s on %s\n", request.output.c_str(), result.output_shape.c_str(),
                   result.seconds, where.c_str());
    }
  };
}

void register_action(const std::string& command, std::function<void()> action) {
  actions()[command] = std::move(action);
}

void run_selected_command(CLI::App& app) {
  for (CLI::App* command : app.get_subcommands()) actions().at(command->get_name())();
}

}  // namespace voxmamba::cli
