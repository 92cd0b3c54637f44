#pragma once
// The pipeline's fields of a model's `config` (pipeline.md, "A model on disk"): how an image
// is prepared for the network. Models created by `voxmamba init` carry the defaults below;
// trained models carry their dataset's.
#include <array>
#include <string>
#include <vector>

#include "pipeline/intensity.h"

namespace voxmamba::pipeline {

struct InferenceSettings {
  std::array<std::int64_t, 3> patch_size{128, 128, 128};  // d, h, w voxels, multiples of 16
  std::array<double, 3> spacing{1.0, 1.0, 1.0};          // target spacing, x, y, z mm
  std::string normalization = "zscore_nonzero";          // or "ct" (needs ct_stats)
  IntensityStats ct_stats{};
  std::vector<std::string> labels;                       // names, background first
  std::string orientation = "RAS";                        // canonical voxel axes (orientation.h)
};

// Reads the fields from the config JSON, with the defaults above for missing ones; throws
// Error "invalid config: ..." for malformed values.
InferenceSettings inference_settings_from_json(const std::string& config_json);
// Adds the default fields to a config JSON object that lacks them.
std::string with_default_inference_settings(const std::string& config_json, int num_classes);

}  // namespace voxmamba::pipeline
