#pragma once
// Reorientation to a model's canonical orientation (pipeline.md: "reorient to the model's
// canonical orientation ... reorient back"), so that the network sees every image with the
// same anatomical axis order and directions whatever the scanner stored. Only axis
// permutations and flips: voxels are moved, never interpolated; for an oblique image each
// voxel axis goes to the patient axis it is closest to (as nibabel's io_orientation).
//
// Orientation codes name where each voxel axis x, y, z points, in patient terms: "RAS" means
// x towards Right, y towards Anterior, z towards Superior; "LPS" is ITK's identity direction.
#include <array>
#include <string>

#include "core/tensor.h"

namespace voxmamba::pipeline {

struct AxisMapping {
  std::array<int, 3> source{0, 1, 2};     // for canonical axis c (x, y, z): the input's voxel axis
  std::array<bool, 3> flip{false, false, false};
  bool identity() const;
};

// `direction`: io::Geometry's row-major LPS matrix (column = voxel axis). Throws Error for an
// invalid code.
AxisMapping orientation_mapping(const std::array<double, 9>& direction, const std::string& code);
// The code of a direction matrix, e.g. "LPS" for the identity.
std::string orientation_code(const std::array<double, 9>& direction);

// volume [z, y, x, C] (or [z, y, x]) in the input's axes -> the canonical axes, and back.
Tensor reorient(const Tensor& volume, const AxisMapping& mapping);
Tensor reorient_back(const Tensor& volume, const AxisMapping& mapping);
// Spacing (x, y, z) in the canonical axes.
std::array<double, 3> reorient_spacing(const std::array<double, 3>& spacing, const AxisMapping& mapping);

}  // namespace voxmamba::pipeline
