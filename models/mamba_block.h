#pragma once
// Mamba block with three orientations (network.md; SegMamba, Xing et al., MICCAI 2024):
// one input projection, three selective-scan branches over the volume's voxels in the
// fwd, bwd and slice orders, summed, gated by SiLU(z), one output projection.
#include <array>

#include "models/layers.h"

namespace voxmamba::models {

struct MambaBranch {  // one orientation
  kernels::TokenOrder order = kernels::TokenOrder::Forward;
  Tensor conv_weight, conv_bias;      // [d_conv, E], [E]
  LinearLayer x_to_dt, x_to_B, x_to_C;  // x_proj split into its [dt_in | B | C] rows; dt_in zero-padded to 8k
  LinearLayer dt_proj;                // R -> E without bias; the bias goes into the scan
  Tensor dt_bias, A, D;               // [E], [E, S] = -exp(A_log), [E]
};

struct MambaBlock {
  NormLayer norm;
  LinearLayer in_x, in_z, out_proj;   // in_proj split into its xi and z halves
  std::array<MambaBranch, 3> branches;

  static MambaBlock load(const ParameterReader& reader, int dt_rank, int d_state);
  // x [N, D, H, W, C] (not normalised); returns out_proj(y), the residual branch.
  Tensor forward(const Tensor& x) const;
};

}  // namespace voxmamba::models
