// The one dispatch point: an op runs on the device its input lives on.
#include "kernels/ops.h"

#include "kernels/cpu/cpu_ops.h"

namespace voxmamba::kernels {
namespace {

// A CUDA tensor reaches here only in a CUDA build, whose op kernels arrive with the CUDA
// backend; until then say so rather than copy to the host silently.
void on_cpu(Op op, const Tensor& x) {
  if (!x.defined()) throw Error(std::string(op_name(op)) + ": input is missing");
  if (!x.device().is_cpu()) {
    throw Error(std::string(op_name(op)) + ": no kernel for device " + x.device().name() + " yet");
  }
}

}  // namespace

const char* token_order_name(TokenOrder order) {
  switch (order) {
    case TokenOrder::Forward: return "fwd";
    case TokenOrder::Backward: return "bwd";
    case TokenOrder::Slice: return "slice";
  }
  return "?";
}

Tensor conv3d(const Tensor& x, const Tensor& weight, const Tensor& bias, const ConvParams& params) {
  on_cpu(Op::Conv3d, x);
  return cpu::conv3d(x, weight, bias, params);
}
Tensor conv_transpose3d_k2s2(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  on_cpu(Op::ConvTranspose3d, x);
  return cpu::conv_transpose3d_k2s2(x, weight, bias);
}
Tensor deform_dwconv3d(const Tensor& x, const Tensor& offsets, const Tensor& weight, const Tensor& bias,
                       int kernel, int dilation) {
  on_cpu(Op::DeformDepthwiseConv3d, x);
  return cpu::deform_dwconv3d(x, offsets, weight, bias, kernel, dilation);
}
Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps) {
  on_cpu(Op::LayerNorm, x);
  return cpu::layer_norm(x, gamma, beta, eps);
}
Tensor instance_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps) {
  on_cpu(Op::InstanceNorm, x);
  return cpu::instance_norm(x, gamma, beta, eps);
}
Tensor gelu(const Tensor& x) {
  on_cpu(Op::Gelu, x);
  return cpu::gelu(x);
}
Tensor silu(const Tensor& x) {
  on_cpu(Op::Silu, x);
  return cpu::silu(x);
}
Tensor leaky_relu(const Tensor& x, float slope) {
  on_cpu(Op::LeakyRelu, x);
  return cpu::leaky_relu(x, slope);
}
Tensor softplus(const Tensor& x) {
  on_cpu(Op::Softplus, x);
  return cpu::softplus(x);
}
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  on_cpu(Op::Linear, x);
  return cpu::linear(x, weight, bias);
}
Tensor reorder_tokens(const Tensor& x, TokenOrder order, const VolumeShape& volume) {
  on_cpu(Op::ReorderTokens, x);
  return cpu::reorder_tokens(x, order, volume);
}
Tensor restore_tokens(const Tensor& x, TokenOrder order, const VolumeShape& volume) {
  on_cpu(Op::RestoreTokens, x);
  return cpu::restore_tokens(x, order, volume);
}
Tensor causal_conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias, TokenOrder order,
                     const VolumeShape& volume, bool apply_silu) {
  on_cpu(Op::CausalConv1d, x);
  return cpu::causal_conv1d(x, weight, bias, order, volume, apply_silu);
}
Tensor selective_scan(const ScanInputs& in, TokenOrder order, const VolumeShape& volume) {
  on_cpu(Op::SelectiveScan, in.u);
  return cpu::selective_scan(in, order, volume);
}
Tensor add(const Tensor& a, const Tensor& b) {
  on_cpu(Op::Add, a);
  return cpu::add(a, b);
}
Tensor mul(const Tensor& a, const Tensor& b) {
  on_cpu(Op::Mul, a);
  return cpu::mul(a, b);
}
Tensor concat_channels(const Tensor& a, const Tensor& b) {
  on_cpu(Op::ConcatChannels, a);
  return cpu::concat_channels(a, b);
}
Tensor softmax(const Tensor& x) {
  on_cpu(Op::Softmax, x);
  return cpu::softmax(x);
}
Tensor argmax(const Tensor& x) {
  on_cpu(Op::Argmax, x);
  return cpu::argmax(x);
}

}  // namespace voxmamba::kernels
