#pragma once
// What ITK 5.2 does not tell us about a NIfTI file, read from its header with zlib:
// - which transform the file prefers: the NIfTI standard (and nibabel) take the sform when
//   sform_code > 0, ITK 5.2 takes the qform; the two differ in real files (mricron's JHU
//   atlas has a left-handed qform and a right-handed sform), so io/ applies the standard's
//   rule itself;
// - whether the file holds all its voxels (ITK reads a truncated .nii.gz without error);
// - whether it is NIfTI-2, which ITK 5.2 cannot read (io/nifti2_reader.h reads those).
#include <array>
#include <cstdint>
#include <string>

namespace voxmamba::io {

struct NiftiHeader {
  int version = 1;                      // 1 or 2
  std::array<std::int64_t, 8> dim{};    // dim[0] = rank (NIfTI-1 only)
  int sform_code = 0;
  std::array<std::array<double, 4>, 3> srow{};  // voxel (i, j, k, 1) -> RAS mm
  std::int64_t data_bytes = 0;          // vox_offset + voxels * bytes per voxel
  std::int64_t file_bytes = 0;          // decompressed length actually present
  std::int64_t non_finite_voxels = 0;   // NaN or infinite float voxels
};

bool has_nifti_ending(const std::string& path);
bool has_gzipped_nifti_ending(const std::string& path);  // .nii.gz

// Spacing, direction and origin (LPS, as io::Geometry) of a voxel -> RAS affine [3][4];
// false for a degenerate (zero-length) axis, leaving the outputs unspecified.
bool lps_geometry_from_ras_affine(const double ras[3][4], std::array<double, 3>& spacing,
                                  std::array<double, 9>& direction, std::array<double, 3>& origin);
// Throws Error naming the path when the header cannot be read. Decompresses the whole file.
NiftiHeader read_nifti_header(const std::string& path);
// 1 or 2 for a NIfTI-1 or NIfTI-2 file (its first four bytes, in either byte order), 0 for
// anything else or an unreadable file. Reads only those bytes.
int nifti_version(const std::string& path);

}  // namespace voxmamba::io
