#pragma once
// Linear maps with at most kNarrowOutputs outputs or kNarrowInputs inputs (the segmentation
// head's classes, a one-channel image's pointwise conv), on kernels of their own: cuBLAS runs
// them as GEMMs with tiles far wider than the map, several times slower than moving their
// bytes.
#include <cstdint>

#include "core/tensor.h"

namespace voxmamba::kernels::cuda {

constexpr std::int64_t kNarrowOutputs = 4, kNarrowInputs = 4;

// y = x weight (+ bias) when the map is narrow and its rows allow 16-byte vectors; returns
// whether it ran. y is allocated, of the output type (the input's, or float32).
bool narrow_linear(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& y);

}  // namespace voxmamba::kernels::cuda
