#pragma once
// NIfTI-2 (540-byte header, 64-bit sizes), which ITK 5.2's NIfTI reader does not accept:
// read directly with zlib, with the same geometry rules as io/ applies to NIfTI-1 (sform
// when sform_code > 0, else qform, else pixdim; RAS converted to LPS).
#include <string>

#include "io/image.h"

namespace voxmamba::io {

// 3D scalar NIfTI-2 (.nii or .nii.gz); throws Error naming the path for anything else.
Volume read_nifti2(const std::string& path);

}  // namespace voxmamba::io
