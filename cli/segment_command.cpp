// voxmamba segment: argument parsing, the terminal progress bar and the summary; the work is
// pipeline::run_segment.
#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"
#include "pipeline/segment_job.h"

namespace voxmamba::cli {
namespace {

struct SegmentOptions {
  pipeline::SegmentRequest request;
  bool no_tta = false, quiet = false;
} options;

// "[#######.............]  12/40 passes  3.1/s  ETA 9 s", redrawn in place on stderr.
class ProgressBar {
 public:
  void operator()(std::int64_t done, std::int64_t total) {
    const auto now = std::chrono::steady_clock::now();
    if (done == 1 || start_ == std::chrono::steady_clock::time_point{}) start_ = now;
    const double seconds = std::chrono::duration<double>(now - start_).count();
    // Timed from the first pass's end, so the rate counts the passes after it.
    const double rate = seconds > 0 ? static_cast<double>(done - 1) / seconds : 0.0;
    const int width = 30, filled = static_cast<int>(width * done / std::max<std::int64_t>(1, total));
    const std::string eta =
        done > 1 && rate > 0 ? std::to_string(static_cast<long long>(static_cast<double>(total - done) / rate)) + " s" : "--";
    std::fprintf(stderr, "\r[%s%s] %lld/%lld passes  %.1f/s  ETA %s ", std::string(filled, '#').c_str(),
                 std::string(width - filled, '.').c_str(), static_cast<long long>(done), static_cast<long long>(total),
                 rate, eta.c_str());
    if (done == total) std::fprintf(stderr, "\n");
  }

 private:
  std::chrono::steady_clock::time_point start_{};
};

}  // namespace

void add_segment_command(CLI::App& app) {
  CLI::App* command = app.add_subcommand(
      "segment", "Segment an image, a DICOM series or a folder of cases; label maps keep the input's geometry");
  pipeline::SegmentRequest& r = options.request;
  command->add_option("-i,--input", r.input, "NIfTI/NRRD/MHA file, DICOM series folder, or folder of CASE_0000.nii.gz")
      ->required();
  command->add_option("-o,--output", r.output, "label map file (e.g. seg.nii.gz), or a folder for a folder of cases")
      ->required();
  command->add_option("-m,--model", r.model, "model file (HDF5)")->required();
  command->add_option("--device", r.device, "auto, cpu, cuda or cuda:N")->capture_default_str();
  command->add_option("--precision", r.precision,
                      kPrecisionHelp)
      ->capture_default_str();
  command->add_option("--overlap", r.overlap, "sliding-window overlap in [0, 1); step = patch * (1 - overlap)")
      ->capture_default_str();
  command->add_flag("--no-tta", options.no_tta, "no mirroring test-time augmentation (8x faster)");
  command->add_flag("--tta", "mirror over all three axes and average (the default)");
  command->add_option("--series", r.series, "DICOM series UID when the folder holds several (see voxmamba info)");
  command->add_option("--stats", r.stats, "write voxels and mL per label as JSON");
  command->add_flag("--largest-component", r.largest_component,
                    "keep only each label's largest connected component (6-connectivity)");
  command->add_flag("--save-probabilities", r.save_probabilities,
                    "also write the class probabilities as OUTPUT_probabilities.npy [z, y, x, classes] float32");
  command->add_flag("--quiet", options.quiet, "no progress bar or summary");
  command->footer(
      "Examples:\n"
      "  voxmamba segment -i scan.nii.gz -o seg.nii.gz -m model.h5\n"
      "  voxmamba segment -i dicom_folder/ -o seg.nii.gz -m model.h5 --series 1.2.840...\n"
      "  voxmamba segment -i cases/ -o out/ -m model.h5 --no-tta --overlap 0.2 --stats stats.json");
  register_action("segment", [] {
    options.request.tta = !options.no_tta;
    ProgressBar bar;
    const pipeline::ProgressCallback progress = options.quiet ? pipeline::ProgressCallback{} : pipeline::ProgressCallback(bar);
    const pipeline::SegmentSummary summary = pipeline::run_segment(options.request, progress);
    if (!options.quiet) {
      for (const pipeline::CaseResult& c : summary.cases) {
        if (c.error.empty()) {
          std::fprintf(stderr, "%s: %s (%.1f s, %lld passes)\n", c.name.c_str(), c.output.c_str(), c.seconds,
                       static_cast<long long>(c.passes));
        }
      }
    }
    if (summary.failures() > 0) {
      std::string names;
      for (const pipeline::CaseResult& c : summary.cases) {
        if (!c.error.empty()) {
          std::fprintf(stderr, "voxmamba: error: %s\n", c.error.c_str());
          names += (names.empty() ? "" : ", ") + c.name;
        }
      }
      throw Error(std::to_string(summary.failures()) + " of " + std::to_string(summary.cases.size()) +
                  " case(s) failed: " + names);
    }
  });
}

}  // namespace voxmamba::cli
