#include "pipeline/inference_settings.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "pipeline/orientation.h"

namespace voxmamba::pipeline {

InferenceSettings inference_settings_from_json(const std::string& config_json) {
  InferenceSettings settings;
  try {
    const nlohmann::json config = nlohmann::json::parse(config_json);
    if (config.contains("patch_size")) settings.patch_size = config.at("patch_size").get<std::array<std::int64_t, 3>>();
    if (config.contains("spacing")) settings.spacing = config.at("spacing").get<std::array<double, 3>>();
    if (config.contains("normalization")) settings.normalization = config.at("normalization").get<std::string>();
    if (config.contains("ct_stats")) {
      const nlohmann::json& s = config.at("ct_stats");
      settings.ct_stats = {s.at("mean").get<double>(), s.at("std").get<double>(), s.at("percentile_00_5").get<double>(),
                           s.at("percentile_99_5").get<double>()};
    }
    if (config.contains("labels")) settings.labels = config.at("labels").get<std::vector<std::string>>();
    if (config.contains("orientation")) settings.orientation = config.at("orientation").get<std::string>();
  } catch (const nlohmann::json::exception& error) {
    throw Error(std::string("invalid config: pipeline fields: ") + error.what());
  }
  for (std::int64_t size : settings.patch_size) {
    if (size < 16 || size % 16 != 0) throw Error("invalid config: patch_size must be multiples of 16");
  }
  for (double spacing : settings.spacing) {
    if (!(spacing > 0)) throw Error("invalid config: spacing must be positive");
  }
  if (settings.normalization != "zscore_nonzero" && settings.normalization != "ct") {
    throw Error("invalid config: normalization must be zscore_nonzero or ct");
  }
  orientation_mapping({1, 0, 0, 0, 1, 0, 0, 0, 1}, settings.orientation);  // validates the code
  return settings;
}

std::string with_default_inference_settings(const std::string& config_json, int num_classes) {
  nlohmann::json config = nlohmann::json::parse(config_json);
  const InferenceSettings defaults;
  if (!config.contains("patch_size")) config["patch_size"] = defaults.patch_size;
  if (!config.contains("spacing")) config["spacing"] = defaults.spacing;
  if (!config.contains("normalization")) config["normalization"] = defaults.normalization;
  if (!config.contains("orientation")) config["orientation"] = defaults.orientation;
  if (!config.contains("labels")) {
    std::vector<std::string> labels = {"background"};
    for (int k = 1; k < num_classes; ++k) labels.push_back("label_" + std::to_string(k));
    config["labels"] = labels;
  }
  return config.dump(2);
}

}  // namespace voxmamba::pipeline
