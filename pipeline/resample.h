#pragma once
// Resampling between the image's spacing and the model's, on the CPU. nnU-Net v2 resamples
// images with cubic splines and probabilities with linear interpolation
// (nnunetv2/preprocessing/resampling/default_resampling.py); we use linear for both, which
// pipeline.md allows, and nearest neighbour for label maps.
#include <array>
#include <cstdint>

#include "core/tensor.h"

namespace voxmamba::pipeline {

// Trilinear resampling of a [D, H, W, C] (or [D, H, W]) float32 volume to `new_size`, each
// channel on its own. Voxel centres map as PyTorch's align_corners=False and skimage's resize:
// src = (dst + 0.5) * in / out - 0.5, clamped to [0, in - 1] (the edge voxels repeat outward).
Tensor resample_linear(const Tensor& volume, const std::array<std::int64_t, 3>& new_size);

// Nearest neighbour for a [D, H, W] label map (int32; any dtype and [D, H, W, C] are accepted
// and copied voxel by voxel): the source voxel whose centre is nearest, floor((dst + 0.5) * in /
// out) as PyTorch's "nearest-exact", so no value is ever invented.
Tensor resample_nearest_labels(const Tensor& labels, const std::array<std::int64_t, 3>& new_size);

// nnU-Net's compute_new_shape: round(size * spacing_in / spacing_out) per axis, half to even
// as np.round, at least 1. Spacings in the same (d, h, w) order as size, all positive.
std::array<std::int64_t, 3> resampled_size(const std::array<std::int64_t, 3>& size,
                                           const std::array<double, 3>& spacing_in,
                                           const std::array<double, 3>& spacing_out);

}  // namespace voxmamba::pipeline
