#include "models/dlka_block.h"

namespace voxmamba::models {

DepthwiseConv DepthwiseConv::load(const ParameterReader& reader, int kernel, int dilation, bool deformable) {
  DepthwiseConv conv;
  conv.kernel = kernel;
  conv.dilation = dilation;
  conv.deformable = deformable;
  const Tensor& weight = reader.get("weight");  // [C, 1, K, K, K]
  const std::int64_t channels = weight.dim(0);
  conv.weight = reader.upload(pack_conv3d_weight(weight).reshape({weight.numel() / channels, channels}));
  if (deformable && reader.activations() != DType::f32) {
    // The GPU's deformable conv reads its tap weights in float16 in both 16-bit types
    // (kernels/ops.h), so they are checked and rounded once here rather than by every call
    // (16 small casts a base forward).
    require_float16_range(weight, "tensor '" + reader.name("weight") + "'",
                          "the GPU's deformable convs read their weights in float16 in 16-bit precisions; "
                          "run with --precision fp32");
    conv.weight = kernels::cast(conv.weight, DType::f16);
  }
  conv.bias = reader.tensor("bias");
  if (deformable) {
    conv.offset_dw = Conv3dLayer::load(reader.child("offset/dw"), {3, 1, 1, 1, static_cast<int>(channels)}, true);
    // The offset head's 3 K^3 outputs (1029 or 375) are padded to gemm_aligned (layers.h) so
    // that its 16-bit output rows are 16-byte aligned: unpadded, cuBLAS ran the network's
    // widest GEMM on slow kernels. The deformable conv reads the offsets with the padded row
    // stride and ignores the zero channels (ops.h).
    const ParameterReader head = reader.child("offset/pw");
    const Tensor& head_weight = head.get("weight");  // [3 K^3, C, 1, 1, 1]
    const std::int64_t offsets = head_weight.dim(0);
    conv.offset_pw = linear_rows(head, head_weight.reshape({offsets, head_weight.numel() / offsets}), 0, offsets,
                                 gemm_aligned(offsets));
    conv.offset_pw.bias = head.tensor("bias");
  }
  return conv;
}

Tensor DepthwiseConv::forward(const Tensor& u) const {
  const std::int64_t channels = u.dim(4);
  if (deformable) {
    // The offset head's bias is added inside the deformable conv (see ops.h).
    const Tensor offsets = kernels::linear(offset_dw.forward(u), offset_pw.weight, Tensor());
    return kernels::deform_dwconv3d(u, offsets, weight, bias, kernel, dilation, offset_pw.bias);
  }
  const kernels::ConvParams params{kernel, 1, dilation * (kernel - 1) / 2, dilation, static_cast<int>(channels)};
  return kernels::conv3d(u, weight.reshape({weight.dim(0), 1, channels}), bias, params);
}

DlkaBlock DlkaBlock::load(const ParameterReader& reader, bool deformable) {
  DlkaBlock block;
  block.norm = NormLayer::load(reader.child("norm"));
  block.proj1 = LinearLayer::load(reader.child("proj1"), true);
  block.proj2 = LinearLayer::load(reader.child("proj2"), true);
  block.attention_pw = LinearLayer::load(reader.child("lka/pw"), true);
  block.dw5 = DepthwiseConv::load(reader.child("lka/dw5"), 5, 1, deformable);
  block.dw7 = DepthwiseConv::load(reader.child("lka/dw7"), 7, 3, deformable);
  return block;
}

Tensor DlkaBlock::forward(const Tensor& x) const {
  const Tensor u = kernels::gelu(proj1.forward(norm.layer_norm(x)));
  const Tensor attention = attention_pw.forward(dw7.forward(dw5.forward(u)));
  return proj2.forward_plus(kernels::mul(u, attention), x);
}

}  // namespace voxmamba::models
