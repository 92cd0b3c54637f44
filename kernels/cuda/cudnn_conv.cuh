#pragma once
// Dense 3D convolutions on cuDNN 9 (channels-last NDHWC, bfloat16 or float16 with fp32
// accumulation on tensor cores). gpu.md: cuDNN's implicit-GEMM kernels are what makes the decoder's dense
// 3^3 convs cheap; our own im2col path remains for float32 and for shapes cuDNN declines.
#include "kernels/ops.h"

namespace voxmamba::kernels::cuda {

// Whether this build links cuDNN, and the version of the library loaded (0 without).
bool cudnn_available();
int cudnn_version();
// y = conv3d(x, weight) without bias, weight in ops.h's packed layout [K^3, Cin/g, Cout].
// Returns false, leaving y untouched, when cuDNN is absent or has no kernel for the shape.
bool cudnn_conv3d(const Tensor& x, const Tensor& weight, Tensor& y, const ConvParams& params);

}  // namespace voxmamba::kernels::cuda
