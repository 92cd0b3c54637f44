#pragma once
// The UNETR-style residual decoder blocks that SegMamba uses (network.md, "Decoder").
#include "models/layers.h"

namespace voxmamba::models {

// conv3 -> IN -> LReLU -> conv3 -> IN, plus skip = IN(pw(x)) when channels change; LReLU(sum).
struct ResBlock {
  Conv3dLayer conv1, conv2;
  NormLayer norm1, norm2;
  bool has_skip = false;
  LinearLayer skip_conv;
  NormLayer skip_norm;

  static ResBlock load(const ParameterReader& reader);
  Tensor forward(const Tensor& x) const;
};

// t = ConvTranspose3d(k2, s2)(x); ResBlock(concat[t, skip]).
struct UpBlock {
  Tensor up_weight;  // packed [in, 8, out]
  ResBlock res;

  static UpBlock load(const ParameterReader& reader);
  Tensor forward(const Tensor& x, const Tensor& skip) const;
};

}  // namespace voxmamba::models
