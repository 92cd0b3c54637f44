#pragma once
// Medical images: voxels plus the geometry that places them in the patient (design.md:
// "geometry is sacred"). Read and written through ITK 5.2 (NIfTI-1/2, .nii.gz, NRRD,
// MetaImage) and GDCM through ITK (DICOM series); ITK stays inside io/.
//
// Axis conventions, stated once: sizes, spacing and origin are in ITK's (x, y, z) = (i, j, k)
// index order, in millimetres, in ITK's LPS patient frame; `direction` is the 3x3 matrix
// whose column c is index axis c's direction, stored row-major. Voxels live in a Tensor
// [z, y, x, 1] (D, H, W, C: the engine's channels-last layout, x fastest as in ITK's buffer).
#include <array>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace voxmamba::io {

struct Geometry {
  std::array<std::int64_t, 3> size{};      // x, y, z
  std::array<double, 3> spacing{1, 1, 1};  // mm
  std::array<double, 3> origin{};          // mm, LPS
  std::array<double, 9> direction{1, 0, 0, 0, 1, 0, 0, 0, 1};
};

struct Volume {
  Tensor voxels;  // float32 [z, y, x, 1]
  Geometry geometry;
  std::string pixel_type;  // the file's own component type: "uint8", "int16", "float32", ...
};

struct DicomSeries {
  std::string uid, description;
  std::int64_t slices = 0;
  std::array<std::int64_t, 3> size{};
  std::vector<std::string> files;  // sorted by position along the slice normal
};

struct ImageInfo {
  Geometry geometry;
  std::string pixel_type;
  double min = 0, max = 0;
  std::vector<DicomSeries> series;  // for a DICOM folder
};

// A NIfTI/NRRD/MHA file, or a DICOM folder (the series `series_uid`, or the one with the
// most slices when empty). Rescale slope/intercept are applied. Errors name the path.
Volume read_image(const std::string& path, const std::string& series_uid = "");
ImageInfo describe_image(const std::string& path);
std::vector<DicomSeries> list_dicom_series(const std::string& folder);

enum class LabelType { UInt8, Int16 };
// Writes voxels [z, y, x] (int32 labels or float32 values) with `geometry`, atomically; the
// format follows the file ending.
void write_labels(const std::string& path, const Tensor& labels, const Geometry& geometry, LabelType type);
void write_float_image(const std::string& path, const Tensor& voxels, const Geometry& geometry);
// Writes voxels [z, y, x] (float32, rounded to int16) as a DICOM series of `modality` in
// `folder` (created if missing), one file per z slice, each with its own position so that
// any DICOM reader rebuilds `geometry`. For tests and exports.
void write_dicom_series(const std::string& folder, const Tensor& voxels, const Geometry& geometry,
                        const std::string& modality = "MR");

}  // namespace voxmamba::io
