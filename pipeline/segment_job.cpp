#include "pipeline/segment_job.h"

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <regex>
#include <vector>

#include "io/atomic_file.h"
#include "io/image.h"
#include "io/npy.h"
#include "kernels/ops.h"
#include "pipeline/inference_settings.h"
#include "pipeline/model_store.h"
#include "pipeline/orientation.h"
#include "pipeline/output_paths.h"
#include "pipeline/postprocess.h"
#include "pipeline/resample.h"
#include "pipeline/sliding_window.h"

namespace voxmamba::pipeline {
namespace fs = std::filesystem;
namespace {

using Size3 = std::array<std::int64_t, 3>;

struct Case {
  std::string name;
  std::vector<std::string> channel_files;  // one per channel; a DICOM folder is one "file"
  std::string output;
};

// The image-file ending of `name` (".nii.gz", ...), or "" for anything else.
std::string image_ending(const std::string& name) {
  for (const std::string ending : {".nii.gz", ".nii", ".nrrd", ".mha", ".mhd"}) {
    if (name.size() > ending.size() && name.compare(name.size() - ending.size(), ending.size(), ending) == 0) {
      return ending;
    }
  }
  return "";
}

bool is_image_file(const fs::path& path) { return !image_ending(path.filename().string()).empty(); }

// nnU-Net naming: CASE_0000.nii.gz is channel 0 of CASE.
std::vector<Case> cases_in_folder(const std::string& folder, const std::string& output_folder) {
  const std::regex pattern(R"((.+)_(\d{4})\.(nii\.gz|nii|nrrd|mha))");
  std::map<std::string, std::map<int, std::string>> channels;
  for (const auto& entry : fs::directory_iterator(folder)) {
    std::smatch match;
    const std::string name = entry.path().filename().string();
    if (entry.is_regular_file() && std::regex_match(name, match, pattern)) {
      channels[match[1].str()][std::stoi(match[2].str())] = entry.path().string();
    }
  }
  std::vector<Case> cases;
  for (const auto& [name, files] : channels) {
    Case c{name, {}, (fs::path(output_folder) / (name + ".nii.gz")).string()};
    for (const auto& [index, file] : files) c.channel_files.push_back(file);
    cases.push_back(std::move(c));
  }
  return cases;
}

bool folder_holds_images(const std::string& folder) {
  for (const auto& entry : fs::directory_iterator(folder)) {
    if (entry.is_regular_file() && is_image_file(entry.path())) return true;
  }
  return false;
}

// Reads every channel of a case into [D, H, W, C], checking that they share one geometry.
io::Volume read_case(const Case& c, const std::string& series) {
  const int channels = static_cast<int>(c.channel_files.size());
  io::Volume first = io::read_image(c.channel_files[0], series);
  if (channels == 1) return first;
  const Shape s = first.voxels.shape();
  Tensor stacked = Tensor::empty({s[0], s[1], s[2], channels});
  for (int k = 0; k < channels; ++k) {
    const io::Volume v = k == 0 ? first : io::read_image(c.channel_files[k], series);
    if (v.geometry.size != first.geometry.size) throw Error(c.channel_files[k], "size differs from channel 0");
    const float* from = v.voxels.data<float>();
    float* to = stacked.data<float>();
    const std::int64_t voxels = v.voxels.numel();
    for (std::int64_t i = 0; i < voxels; ++i) to[i * channels + k] = from[i];
  }
  first.voxels = stacked;
  return first;
}

// A case's images read on a thread of their own: reading needs neither the model nor the
// GPU, so the first case is read while the model loads and each next case while the one
// before it runs. A read's error comes out of get(), in that case's turn.
std::future<io::Volume> read_case_ahead(const Case& c, const std::string& series) {
  return std::async(std::launch::async, [&c, &series] { return read_case(c, series); });
}

// seg.nii.gz -> seg_probabilities.npy, beside the label map.
std::string probabilities_path(const std::string& output) {
  return output.substr(0, output.size() - image_ending(output).size()) + "_probabilities.npy";
}

void check_finite(const Tensor& voxels, const std::string& path) {
  if (count_non_finite(voxels) > 0) throw Error(path, "holds NaN or infinite voxel values");
}

CaseResult segment_case(const Case& c, std::future<io::Volume>& read, const models::VoxMambaNet& net,
                        const InferenceSettings& settings, const SegmentRequest& request,
                        const ProgressCallback& progress) {
  CaseResult result{c.name, c.channel_files.front(), c.output, {}, {}, 0, 0};
  const auto start = std::chrono::steady_clock::now();
  for (const std::string& file : c.channel_files) {
    if (same_file(file, c.output)) throw Error(c.output, "output path equals the input; refusing to overwrite it");
  }
  io::Volume volume = read.get();
  const int channels = net.config().in_channels;
  if (volume.voxels.dim(3) != channels) {
    throw Error(c.channel_files.front(),
                "case '" + c.name + "' has " + std::to_string(c.channel_files.size()) +
                    " channel file(s) but the model expects " + std::to_string(channels));
  }
  check_finite(volume.voxels, c.channel_files.front());
  // Everything from here to the label map runs in the model's canonical axes.
  const AxisMapping axes = orientation_mapping(volume.geometry.direction, settings.orientation);
  const Tensor canonical = reorient(volume.voxels, axes);
  const std::array<double, 3> sp = reorient_spacing(volume.geometry.spacing, axes);  // x, y, z
  const Size3 full{canonical.dim(0), canonical.dim(1), canonical.dim(2)};          // d, h, w = z, y, x
  // Crop to the non-zero region, resample to the model's spacing, normalise, pad to a patch.
  const CropBox box = nonzero_bounding_box(canonical);
  Tensor image = crop_to_box(canonical, box);
  const Size3 cropped{image.dim(0), image.dim(1), image.dim(2)};
  const Size3 target = resampled_size(cropped, {sp[2], sp[1], sp[0]},
                                      {settings.spacing[2], settings.spacing[1], settings.spacing[0]});
  if (target != cropped) image = resample_linear(image, target);
  if (settings.normalization == "ct") {
    normalize_ct(image, settings.ct_stats);
  } else {
    normalize_zscore_nonzero(image);
  }
  Size3 offset{};
  image = pad_to_at_least(image, settings.patch_size, &offset);
  SlidingWindowOptions options{settings.patch_size, request.overlap, request.tta};
  // VOXMAMBA_CUDA_GRAPHS=off (or 0, false) runs every pass eagerly, to compare the two.
  const char* graphs_variable = std::getenv("VOXMAMBA_CUDA_GRAPHS");
  const std::string graphs = graphs_variable ? graphs_variable : "";
  options.cuda_graph = graphs != "off" && graphs != "0" && graphs != "false";
  Tensor probabilities = predict_probabilities(net, image, options, [&](std::int64_t done, std::int64_t total) {
    result.passes = done;
    if (progress) progress(done, total);
  });
  // Back to the input's grid: remove the padding, resample the probabilities, argmax, uncrop.
  probabilities = crop(probabilities, offset, target);
  if (target != cropped) probabilities = resample_linear(probabilities, cropped);
  if (request.save_probabilities) {
    io::write_npy(probabilities_path(c.output), reorient_back(uncrop(probabilities, box, full, 0.0f), axes));
  }
  Tensor labels = uncrop(kernels::argmax(probabilities), box, full, 0.0f);
  if (request.largest_component) keep_largest_component_per_label(labels);
  labels = reorient_back(labels, axes);
  const int classes = net.config().num_classes;
  io::write_labels(c.output, labels, volume.geometry, classes <= 255 ? io::LabelType::UInt8 : io::LabelType::Int16);
  const double voxel_ml = sp[0] * sp[1] * sp[2] / 1000.0;
  // Counted in an array by label (argmax's labels are 0 .. classes - 1) rather than looked up
  // in the map voxel by voxel: 256^3 labels took 88-100 ms that way, 12-14 ms this way (the
  // development machine's CPU).
  std::vector<std::int64_t> counts(static_cast<std::size_t>(classes), 0);
  const std::int32_t* label = labels.data<std::int32_t>();
  const std::int64_t voxels = labels.numel();
  for (std::int64_t i = 0; i < voxels; ++i) {
    if (label[i] < 0 || label[i] >= classes) {
      throw Error(c.output, "label " + std::to_string(label[i]) + " out of range");
    }
    ++counts[static_cast<std::size_t>(label[i])];
  }
  for (int k = 0; k < classes; ++k) {
    const std::int64_t count = counts[static_cast<std::size_t>(k)];
    result.labels[k] = {count, static_cast<double>(count) * voxel_ml};
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

void write_stats(const std::string& path, const SegmentSummary& summary) {
  nlohmann::json out = nlohmann::json::object();
  for (const CaseResult& c : summary.cases) {
    if (!c.error.empty()) continue;
    nlohmann::json labels = nlohmann::json::object();
    for (const auto& [label, stats] : c.labels) {
      labels[std::to_string(label)] = {{"voxels", stats.voxels}, {"volume_ml", stats.millilitres}};
    }
    out[c.name] = {{"input", c.input}, {"output", c.output}, {"labels", labels}};
  }
  io::write_atomically(path, [&](const std::string& temporary) {
    std::ofstream file(temporary);
    file << out.dump(2) << "\n";
    if (!file) throw Error(path, "cannot write statistics");
  });
}

}  // namespace

int SegmentSummary::failures() const {
  int count = 0;
  for (const CaseResult& c : cases) count += !c.error.empty();
  return count;
}

SegmentSummary run_segment(const SegmentRequest& request, const ProgressCallback& progress) {
  if (!fs::exists(request.input)) throw Error(request.input, "no such file or folder");
  if (!(request.overlap >= 0 && request.overlap < 1)) throw Error("--overlap must be in [0, 1)");
  std::vector<Case> cases;
  const bool batch = fs::is_directory(request.input) && folder_holds_images(request.input);
  if (batch) {
    if (!fs::is_directory(request.output)) throw Error(request.output, "output must be an existing folder for a folder of cases");
    cases = cases_in_folder(request.input, request.output);
    if (cases.empty()) throw Error(request.input, "no cases named CASE_0000.nii.gz (nnU-Net naming) in this folder");
  } else {
    const std::string name = fs::path(request.input).filename().string();
    cases.push_back({name.empty() ? "case" : name, {request.input}, request.output});
    require_writable_folder(request.output);
  }
  if (!request.stats.empty()) require_writable_folder(request.stats);
  const Device device = choose_device(request.device);
  const DType precision = choose_precision(request.precision, device);
  std::future<io::Volume> next = read_case_ahead(cases.front(), request.series);
  const LoadedModel model = load_model(request.model, device, precision);
  const InferenceSettings settings = [&] {
    try {
      return inference_settings_from_json(model.config_json);
    } catch (const Error& error) {
      throw Error(request.model, error.what());
    }
  }();
  const models::VoxMambaNet& net = *model.net;
  SegmentSummary summary;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    std::future<io::Volume> read = std::move(next);
    if (i + 1 < cases.size()) next = read_case_ahead(cases[i + 1], request.series);
    try {
      summary.cases.push_back(segment_case(c, read, net, settings, request, progress));
    } catch (const std::exception& error) {
      if (!batch) throw;
      CaseResult failed{c.name, c.channel_files.front(), c.output, error.what(), {}, 0, 0};
      summary.cases.push_back(failed);
    }
  }
  if (!request.stats.empty()) write_stats(request.stats, summary);
  return summary;
}

}  // namespace voxmamba::pipeline
