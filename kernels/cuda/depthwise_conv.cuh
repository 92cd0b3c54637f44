#pragma once
// The depthwise conv on channels-last volumes on the GPU (the plain one; the deformable conv is
// deform_conv.cu's), for convolution.cu's conv3d.
#include "core/tensor.h"
#include "kernels/cuda/conv_geometry.cuh"

namespace voxmamba::kernels::cuda {

// Writes y, of g's output shape, from x, the float32 weight [K^3, C] and bias (if defined); the
// caller has checked the arguments (conv3d's checks).
void depthwise_conv3d(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& y,
                      const ConvGeometry& g);

}  // namespace voxmamba::kernels::cuda
