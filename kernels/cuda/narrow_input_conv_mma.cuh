#pragma once
// Dense convs with few input channels (the stem and the first decoder conv read the
// one-channel image) on tensor cores, for 16-bit activations.
#include "kernels/ops.h"

namespace voxmamba::kernels::cuda {

// y = conv3d(x, weight, bias) (ops.h's layouts; y allocated with the output shape) for
// bfloat16 or float16 x and weight, groups 1, at most 64 output channels in multiples of 8.
// Returns false, leaving y untouched, where it does not apply: another type or shape, a GPU
// or a build without the sm_80 matrix instructions, or more shared memory than a block may
// have; the caller then takes its CUDA-core kernel.
bool narrow_input_conv_mma(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& y,
                           const ConvParams& params);

}  // namespace voxmamba::kernels::cuda
