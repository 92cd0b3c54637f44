#include "kernels/op_checks.h"

#include <string>
#include <utility>

namespace voxmamba::kernels {
namespace {
[[noreturn]] void fail(const char* op, const std::string& message) {
  throw Error(std::string(op) + ": " + message);
}
}  // namespace

std::int64_t conv_output_size(std::int64_t in, const ConvParams& p) {
  return (in + 2 * p.padding - p.dilation * (p.kernel - 1) - 1) / p.stride + 1;
}

void check_rank(const Tensor& x, int rank, const char* op, const char* what) {
  if (!x.defined()) fail(op, std::string(what) + " is missing");
  if (x.rank() != rank) {
    fail(op, std::string(what) + " must have rank " + std::to_string(rank) + ", got " + shape_string(x.shape()));
  }
}

void check_f32_cpu(const Tensor& x, const char* op, const char* what) {
  if (!x.defined()) return;
  if (x.dtype() != DType::f32) fail(op, std::string(what) + " must be float32, got " + dtype_name(x.dtype()));
  if (!x.device().is_cpu()) fail(op, std::string(what) + " must be on the CPU");
}

void check_norm_epilogue(const Tensor& x, const NormEpilogue& epilogue) {
  const Tensor& r = epilogue.residual;
  const bool normalised = epilogue.residual_gamma.defined() || epilogue.residual_beta.defined();
  if (normalised && !r.defined()) fail("instance_norm", "residual_gamma and residual_beta need a residual");
  if (normalised) {
    if (!epilogue.residual_gamma.defined() || !epilogue.residual_beta.defined()) {
      fail("instance_norm", "the residual's norm needs both residual_gamma and residual_beta");
    }
    check_vector(epilogue.residual_gamma, x.dim(-1), "instance_norm", "residual_gamma");
    check_vector(epilogue.residual_beta, x.dim(-1), "instance_norm", "residual_beta");
  }
  if (!r.defined()) return;
  if (r.shape() != x.shape()) {
    fail("instance_norm", "residual shape " + shape_string(r.shape()) + " differs from the input's " +
                              shape_string(x.shape()));
  }
  if (r.dtype() != x.dtype() || r.device() != x.device()) {
    fail("instance_norm", "the residual must have the input's type and device");
  }
}

void check_same_shape(const Tensor& a, const Tensor& b, const char* op) {
  if (a.shape() != b.shape()) {
    fail(op, "shapes differ: " + shape_string(a.shape()) + " and " + shape_string(b.shape()));
  }
}

void check_vector(const Tensor& v, std::int64_t size, const char* op, const char* what) {
  if (!v.defined()) return;
  if (v.rank() != 1 || v.dim(0) != size) {
    fail(op, std::string(what) + " must be [" + std::to_string(size) + "], got " + shape_string(v.shape()));
  }
}

Shape conv3d_output_shape(const Tensor& x, const Tensor& weight, const Tensor& bias, const ConvParams& p) {
  const char* op = "conv3d";
  check_rank(x, 5, op, "input");
  check_rank(weight, 3, op, "weight");
  if (p.kernel < 1 || p.stride < 1 || p.dilation < 1 || p.padding < 0 || p.groups < 1) {
    fail(op, "invalid kernel/stride/dilation/padding/groups");
  }
  const std::int64_t cin = x.dim(4), cout = weight.dim(2);
  const std::int64_t taps = static_cast<std::int64_t>(p.kernel) * p.kernel * p.kernel;
  if (cin % p.groups != 0 || cout % p.groups != 0) fail(op, "channels not divisible by groups");
  if (weight.dim(0) != taps || weight.dim(1) != cin / p.groups) {
    fail(op, "weight " + shape_string(weight.shape()) + " does not fit kernel " + std::to_string(p.kernel) +
                 " and " + std::to_string(cin) + " input channels");
  }
  check_vector(bias, cout, op, "bias");
  Shape out = {x.dim(0), 0, 0, 0, cout};
  for (int axis = 1; axis <= 3; ++axis) {
    out[axis] = conv_output_size(x.dim(axis), p);
    if (out[axis] < 1) fail(op, "input " + shape_string(x.shape()) + " is smaller than the kernel");
  }
  return out;
}

Shape conv_transpose3d_output_shape(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                    const Tensor& skip) {
  const char* op = "conv_transpose3d";
  check_rank(x, 5, op, "input");
  check_rank(weight, 3, op, "weight");
  if (weight.dim(0) != x.dim(4) || weight.dim(1) != 8) {
    fail(op, "weight " + shape_string(weight.shape()) + " does not fit input " + shape_string(x.shape()));
  }
  check_vector(bias, weight.dim(2), op, "bias");
  const Shape upsampled = {x.dim(0), 2 * x.dim(1), 2 * x.dim(2), 2 * x.dim(3), weight.dim(2)};
  if (skip.defined()) {
    check_rank(skip, 5, op, "skip");
    for (int axis = 0; axis < 4; ++axis) {
      if (skip.dim(axis) != upsampled[axis]) {
        fail(op, "skip " + shape_string(skip.shape()) + " does not match the upsampled " +
                     shape_string(upsampled) + " outside the channels");
      }
    }
  }
  return upsampled;
}

void check_deform_args(const Tensor& x, const Tensor& offsets, const Tensor& weight, const Tensor& bias,
                       int kernel, int dilation, const Tensor& offset_bias) {
  const char* op = "deform_dwconv3d";
  check_rank(x, 5, op, "input");
  check_rank(offsets, 5, op, "offsets");
  check_rank(weight, 2, op, "weight");
  if (kernel < 1 || kernel % 2 == 0 || dilation < 1) fail(op, "kernel must be odd and dilation positive");
  const std::int64_t taps = static_cast<std::int64_t>(kernel) * kernel * kernel;
  for (int axis = 0; axis < 4; ++axis) {
    if (offsets.dim(axis) != x.dim(axis)) fail(op, "offsets and input differ in N, D, H or W");
  }
  if (offsets.dim(4) < 3 * taps) {
    fail(op, "offsets must have at least 3*K^3 = " + std::to_string(3 * taps) + " channels");
  }
  if (weight.dim(0) != taps || weight.dim(1) != x.dim(4)) {
    fail(op, "weight " + shape_string(weight.shape()) + " does not fit kernel and channels");
  }
  check_vector(bias, x.dim(4), op, "bias");
  check_vector(offset_bias, 3 * taps, op, "offset bias");
}

Shape linear_output_shape(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  const char* op = "linear";
  if (!x.defined() || x.rank() < 1) fail(op, "input is missing");
  check_rank(weight, 2, op, "weight");
  if (weight.dim(0) != x.dim(-1)) {
    fail(op, "weight " + shape_string(weight.shape()) + " does not fit input " + shape_string(x.shape()));
  }
  check_vector(bias, weight.dim(1), op, "bias");
  Shape out = x.shape();
  out.back() = weight.dim(1);
  return out;
}

void check_linear_residual(const Tensor& x, const Tensor& residual, const Shape& out, DType out_type) {
  if (!residual.defined()) return;
  if (residual.shape() != out) {
    fail("linear", "residual shape " + shape_string(residual.shape()) + " differs from the output's " +
                       shape_string(out));
  }
  if (residual.dtype() != out_type || residual.device() != x.device()) {
    fail("linear", std::string("the residual must have the output's type (") + dtype_name(out_type) +
                       ") and the input's device");
  }
}

void check_sequence(const Tensor& x, const VolumeShape& volume, const char* op) {
  check_rank(x, 3, op, "sequence");
  if (x.dim(1) != volume.tokens()) {
    fail(op, "sequence of " + std::to_string(x.dim(1)) + " tokens does not match the volume's " +
                 std::to_string(volume.tokens()));
  }
}

void check_causal_conv1d_args(const Tensor& x, const Tensor& weight, const Tensor& bias,
                              const VolumeShape& volume) {
  const char* op = "causal_conv1d";
  check_sequence(x, volume, op);
  check_rank(weight, 2, op, "weight");
  if (weight.dim(1) != x.dim(2)) fail(op, "weight channels differ from the input's");
  check_vector(bias, x.dim(2), op, "bias");
}

void check_scan_args(const ScanInputs& in, const VolumeShape& volume) {
  const char* op = "selective_scan";
  check_sequence(in.u, volume, op);
  check_rank(in.A, 2, op, "A");
  const std::int64_t channels = in.u.dim(2), states = in.A.dim(1);
  if (in.A.dim(0) != channels) fail(op, "A must be [E, S]");
  if (in.is_projected()) {
    if (in.delta.defined() || in.B.defined() || in.C.defined()) {
      fail(op, "give either delta, B and C or projected and dt_weight, not both");
    }
    if (!in.projected.defined() || !in.dt_weight.defined()) fail(op, "projected and dt_weight go together");
    check_sequence(in.projected, volume, op);
    check_rank(in.dt_weight, 2, op, "dt_weight");
    const std::int64_t rank = in.dt_weight.dim(0);
    if (rank < 1 || in.dt_weight.dim(1) != channels) {
      fail(op, "dt_weight must be [R, E] with R >= 1, got " + shape_string(in.dt_weight.shape()));
    }
    if (in.projected.dim(0) != in.u.dim(0) || in.projected.dim(2) < rank + 2 * states) {
      fail(op, "projected must be [N, L, P] with P >= R + 2S = " + std::to_string(rank + 2 * states) +
                   ", got " + shape_string(in.projected.shape()));
    }
  } else {
    check_same_shape(in.u, in.delta, op);
    check_sequence(in.B, volume, op);
    check_sequence(in.C, volume, op);
    if (in.B.dim(2) != states || in.C.dim(2) != states || in.B.dim(0) != in.u.dim(0) ||
        in.C.dim(0) != in.u.dim(0)) {
      fail(op, "B and C must be [N, L, S]");
    }
  }
  if (!in.delta_bias.defined() || !in.D.defined()) fail(op, "delta_bias and D are required");
  check_vector(in.delta_bias, channels, op, "delta_bias");
  check_vector(in.D, channels, op, "D");
  for (const auto& [tensor, name] : {std::pair{&in.sum, "sum"}, std::pair{&in.gate, "gate"}}) {
    if (tensor->defined() && tensor->shape() != in.u.shape()) {
      fail(op, std::string(name) + " must have u's shape " + shape_string(in.u.shape()) + ", got " +
                   shape_string(tensor->shape()));
    }
  }
}

FlipGeometry check_flip_args(const Tensor& x, int axis_mask) {
  if (!x.defined()) fail("flip", "input is missing");
  if (x.rank() != 4 && x.rank() != 5) {
    fail("flip", "expects [N, D, H, W, C] or [D, H, W, C], got " + shape_string(x.shape()));
  }
  if (axis_mask < 0 || axis_mask > 7) fail("flip", "axis mask must be in 0..7, got " + std::to_string(axis_mask));
  const int first = x.rank() - 4;  // the d axis
  return {first ? x.dim(0) : 1,       x.dim(first),       x.dim(first + 1), x.dim(first + 2), x.dim(first + 3),
          (axis_mask & 1) != 0,       (axis_mask & 2) != 0, (axis_mask & 4) != 0};
}

}  // namespace voxmamba::kernels
