#pragma once
// D-LKA block (network.md; Azad et al., WACV 2024):
//   DLKA(x) = proj2(LKA(GELU(proj1(LayerNorm(x)))))
//   LKA(u)  = u * pw(dw7d3(dw5(u)))
// where dw5 and dw7d3 are depthwise convs, deformable at configured stages.
#include "models/layers.h"

namespace voxmamba::models {

// A depthwise K^3 conv with dilation, "same" padding; deformable when it has an offset head
// (offsets = pw_off(dw3_off(u)), shared by all channels).
struct DepthwiseConv {
  int kernel = 5, dilation = 1;
  bool deformable = false;
  Tensor weight, bias;  // [K^3, C], [C]
  Conv3dLayer offset_dw;
  LinearLayer offset_pw;

  static DepthwiseConv load(const ParameterReader& reader, int kernel, int dilation, bool deformable);
  Tensor forward(const Tensor& u) const;
};

struct DlkaBlock {
  NormLayer norm;
  LinearLayer proj1, proj2, attention_pw;
  DepthwiseConv dw5, dw7;

  static DlkaBlock load(const ParameterReader& reader, bool deformable);
  Tensor forward(const Tensor& x) const;  // x + DLKA(x): the block with its skip connection
};

}  // namespace voxmamba::models
