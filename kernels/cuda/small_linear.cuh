#pragma once
// Tensor-core linear maps for the network's small K x N shapes in 16-bit types (small_linear.cu).
#include "core/tensor.h"

namespace voxmamba::kernels::cuda {

// y = x weight + bias (bias float32 [N] or undefined) for 16-bit x and y of x's type, weight
// [K, N] with K in {48, 96} and N in {8, 16, 48, 96}. Returns false, launching nothing, for any
// other case, which cuBLAS runs, and when the environment sets VOXMAMBA_SMALL_LINEAR=off (an
// error names any value but on and off).
bool small_linear(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& y);

}  // namespace voxmamba::kernels::cuda
