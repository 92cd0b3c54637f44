#pragma once
// Dense 3^3 convs into 48 channels (the full-resolution decoder's) on tensor cores, with the
// whole weight resident in shared memory, for 16-bit activations.
#include "kernels/cuda/channel_moments.cuh"
#include "kernels/ops.h"

namespace voxmamba::kernels::cuda {

// y = conv3d(x, weight, bias) (ops.h's layouts; y allocated with the output shape) for
// bfloat16 or float16 x and weight: kernel 3, stride 1, padding 1, dilation 1, groups 1,
// input channels a multiple of 16, 48 output channels. Returns false, leaving y untouched,
// where it does not apply: another type or shape, weights beyond a block's shared memory, or a
// GPU or build without the sm_80 matrix instructions; the caller then takes cuDNN.
// With `moments`, the kernel also gathers y's instance-norm statistics as it writes y
// (channel_moments.cuh) and sets *moments to them.
bool resident_weight_conv_mma(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& y,
                              const ConvParams& params, MomentPartials* moments = nullptr);

}  // namespace voxmamba::kernels::cuda
