#pragma once
// Argument checks and output shapes shared by every backend, so that the reference, the
// CPU and the CUDA version of an op reject the same inputs with the same message.
#include <string>

#include "kernels/ops.h"

namespace voxmamba::kernels {

void check_rank(const Tensor& x, int rank, const char* op, const char* what);
void check_f32_cpu(const Tensor& x, const char* op, const char* what);
void check_same_shape(const Tensor& a, const Tensor& b, const char* op);
void check_vector(const Tensor& v, std::int64_t size, const char* op, const char* what);  // [size], or undefined
void check_norm_epilogue(const Tensor& x, const NormEpilogue& epilogue);  // the residual has x's shape and type

Shape conv3d_output_shape(const Tensor& x, const Tensor& weight, const Tensor& bias, const ConvParams& p);
// The upsampled shape [N,2D,2H,2W,Cout]; `skip`, when given, must be [N,2D,2H,2W,Cs].
Shape conv_transpose3d_output_shape(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                    const Tensor& skip = Tensor());
void check_deform_args(const Tensor& x, const Tensor& offsets, const Tensor& weight, const Tensor& bias,
                       int kernel, int dilation, const Tensor& offset_bias);
Shape linear_output_shape(const Tensor& x, const Tensor& weight, const Tensor& bias);
// linear's residual, where defined: the output's shape (`out`) and type, on x's device.
void check_linear_residual(const Tensor& x, const Tensor& residual, const Shape& out, DType out_type);
void check_sequence(const Tensor& x, const VolumeShape& volume, const char* op);
void check_causal_conv1d_args(const Tensor& x, const Tensor& weight, const Tensor& bias,
                              const VolumeShape& volume);
void check_scan_args(const ScanInputs& in, const VolumeShape& volume);

// The spatial geometry of a flip: x is [N, D, H, W, C] or [D, H, W, C] and the mask in 0..7.
struct FlipGeometry {
  std::int64_t batch, depth, height, width, channels;
  bool flip_d, flip_h, flip_w;
};
FlipGeometry check_flip_args(const Tensor& x, int axis_mask);

}  // namespace voxmamba::kernels
