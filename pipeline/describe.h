#pragma once
// `voxmamba info`: what a path holds, as JSON. A model file gives its config and parameter
// counts (keys path, config, modules, parameters); an image file or DICOM folder gives its
// geometry (keys size, spacing, origin, direction, pixel_type, min, max, and series for a
// DICOM folder; axis order and frame as io/image.h states).
#include <nlohmann/json.hpp>
#include <string>

namespace voxmamba::pipeline {

bool is_model_file(const std::string& path);  // an HDF5 file (by its signature)
nlohmann::json describe_path(const std::string& path);

}  // namespace voxmamba::pipeline
