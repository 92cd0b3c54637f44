#pragma once
// NumPy .npy arrays (format versions 1 to 3, little-endian, C order): float32, int32 and
// uint8, the types `voxmamba forward` and the tests exchange with Python.
#include <string>

#include "core/tensor.h"

namespace voxmamba::io {

// Throws Error "<path>: <problem>" for a missing or malformed file, Fortran order, or a
// dtype other than <f4, <i4, |u1.
Tensor read_npy(const std::string& path);
// Written atomically (temporary name, then rename).
void write_npy(const std::string& path, const Tensor& tensor);

}  // namespace voxmamba::io
