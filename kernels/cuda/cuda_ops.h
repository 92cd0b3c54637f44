#pragma once
// CUDA kernels for every op in kernels/ops.h, for float32, bfloat16 and float16 activations.
// Dispatched from kernels/ops.cpp for tensors on a CUDA device; only kernels/cuda includes
// CUDA headers, so this header stays plain C++.
#include <optional>

#include "kernels/ops.h"

namespace voxmamba::kernels::cuda {

Tensor conv3d(const Tensor& x, const Tensor& weight, const Tensor& bias, const ConvParams& params);
Tensor conv_transpose3d_k2s2(const Tensor& x, const Tensor& weight, const Tensor& bias,
                             const Tensor& skip = Tensor());
Tensor deform_dwconv3d(const Tensor& x, const Tensor& offsets, const Tensor& weight, const Tensor& bias,
                       int kernel, int dilation, const Tensor& offset_bias = Tensor());
Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps);
Tensor instance_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps,
                     const NormEpilogue& epilogue = {});
Tensor conv3d_instance_norm(const Tensor& x, const Tensor& weight, const Tensor& bias,
                            const ConvParams& params, const Tensor& gamma, const Tensor& beta, float eps,
                            const NormEpilogue& epilogue = {});
Tensor gelu(const Tensor& x);
Tensor silu(const Tensor& x);
Tensor leaky_relu(const Tensor& x, float slope);
Tensor softplus(const Tensor& x);
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias,
              std::optional<DType> output = std::nullopt, const Tensor& residual = Tensor());
Tensor reorder_tokens(const Tensor& x, TokenOrder order, const VolumeShape& volume);
Tensor restore_tokens(const Tensor& x, TokenOrder order, const VolumeShape& volume);
Tensor causal_conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias, TokenOrder order,
                     const VolumeShape& volume, bool apply_silu);
Tensor selective_scan(const ScanInputs& in, TokenOrder order, const VolumeShape& volume);
Tensor add(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor concat_channels(const Tensor& a, const Tensor& b);
Tensor softmax(const Tensor& x);
Tensor argmax(const Tensor& x);
Tensor cast(const Tensor& x, DType dtype);
Tensor flip(const Tensor& x, int axis_mask);

}  // namespace voxmamba::kernels::cuda
