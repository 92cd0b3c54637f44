#include "models/decoder_blocks.h"

namespace voxmamba::models {
namespace {
constexpr float kLeakySlope = 0.01f;
const kernels::ConvParams kConv3{3, 1, 1, 1, 1};
}  // namespace

ResBlock ResBlock::load(const ParameterReader& reader) {
  ResBlock block;
  block.conv1 = Conv3dLayer::load(reader.child("conv1"), kConv3, false);
  block.conv2 = Conv3dLayer::load(reader.child("conv2"), kConv3, false);
  block.norm1 = NormLayer::load(reader.child("norm1"));
  block.norm2 = NormLayer::load(reader.child("norm2"));
  block.has_skip = reader.has("skip/conv/weight");
  if (block.has_skip) {
    block.skip_conv = LinearLayer::load(reader.child("skip/conv"), false);
    block.skip_norm = NormLayer::load(reader.child("skip/norm"));
  }
  return block;
}

Tensor ResBlock::forward(const Tensor& x) const {
  // network.md: LReLU(IN(conv1 x)) -> conv2 -> IN, plus the skip, then LReLU; the
  // activations, the residual add and the skip's own norm are fused into norm2's output pass,
  // and each conv goes with its norm (conv3d_instance_norm: the GPU's full-resolution convs
  // gather the norm's statistics as they write).
  const Tensor main = norm1.instance_norm_of_conv(conv1, x, {Tensor(), true, kLeakySlope});
  if (!has_skip) return norm2.instance_norm_of_conv(conv2, main, {x, true, kLeakySlope});
  return norm2.instance_norm_of_conv(
      conv2, main, {skip_conv.forward(x), true, kLeakySlope, skip_norm.weight, skip_norm.bias});
}

UpBlock UpBlock::load(const ParameterReader& reader) {
  return {reader.upload_matrix(pack_conv_transpose_weight(reader.get("up/weight"))), ResBlock::load(reader.child("res"))};
}

Tensor UpBlock::forward(const Tensor& x, const Tensor& skip) const {
  return res.forward(kernels::conv_transpose3d_k2s2(x, up_weight, Tensor(), skip));
}

}  // namespace voxmamba::models
