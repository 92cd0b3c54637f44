#pragma once
// Intensity normalisation and cropping to the non-zero region, the preprocessing that nnU-Net v2
// applies before inference (nnunetv2/preprocessing/normalization/default_normalization_schemes.py,
// nnunetv2/preprocessing/cropping/cropping.py). Volumes are channels-last [D, H, W, C] float32
// on the CPU ([D, H, W] is taken as one channel).
#include <array>
#include <cstdint>

#include "core/tensor.h"

namespace voxmamba::pipeline {

// A dataset's foreground intensity statistics for one channel (nnU-Net's fingerprint).
struct IntensityStats {
  double mean = 0, std = 1, percentile_00_5 = 0, percentile_99_5 = 0;
};

// nnU-Net's CTNormalization: clip to [percentile_00_5, percentile_99_5], then
// (x - mean) / max(std, 1e-8) with the dataset's statistics. The volume must have one channel;
// the second form normalises one channel of a multi-channel volume and leaves the others.
void normalize_ct(Tensor& volume, const IntensityStats& stats);
void normalize_ct(Tensor& volume, int channel, const IntensityStats& stats);

// nnU-Net's ZScoreNormalization with use_mask_for_norm, per channel with the image's own
// statistics: mean and (population) std over the voxels where any channel is non-zero, those
// voxels become (x - mean) / max(std, 1e-8) and the rest 0. With fewer than 2 such voxels the
// statistics come from, and apply to, all voxels (nnU-Net would divide by zero there).
// Unlike nnU-Net the mask is not hole-filled: a zero voxel enclosed by non-zero ones stays
// outside it.
void normalize_zscore_nonzero(Tensor& volume);

// [begin, end) in voxels, (d, h, w) order.
struct CropBox {
  std::array<std::int64_t, 3> begin, end;
};

// The smallest box holding every voxel where any channel is non-zero; the whole volume if none
// is (nnU-Net's crop_to_nonzero then leaves the image as it is).
CropBox nonzero_bounding_box(const Tensor& volume);

// The box's sub-volume, as a new tensor ([D, H, W] or [D, H, W, C], any dtype).
Tensor crop_to_box(const Tensor& volume, const CropBox& box);

// Puts `cropped` back at `box` inside a volume of `full_size` filled with `fill` elsewhere
// (0 for a label map: background). Keeps the rank, channels and dtype of `cropped`; for
// integer dtypes `fill` must be a whole number in range.
Tensor uncrop(const Tensor& cropped, const CropBox& box, const std::array<std::int64_t, 3>& full_size,
              float fill);

}  // namespace voxmamba::pipeline
