#pragma once
// Mamba block with three orientations (network.md; SegMamba, Xing et al., MICCAI 2024):
// one input projection, three selective-scan branches over the volume's voxels in the
// fwd, bwd and slice orders, summed, gated by SiLU(z), one output projection.
#include <array>

#include "models/layers.h"

namespace voxmamba::models {

struct MambaBranch {  // one orientation
  kernels::TokenOrder order = kernels::TokenOrder::Forward;
  Tensor conv_weight, conv_bias;  // [d_conv, E], [E]
  // x_proj, E -> [dt_in (R) | zeros | B (S) | C (S)] with dt_in's columns padded to
  // gemm_aligned(R); the scan reads B and C in place and forms delta from dt_in (ops.h).
  LinearLayer x_proj;
  Tensor dt_weight;      // dt_proj's weight as [R, E], float32; its bias goes into the scan
  Tensor dt_bias, A, D;  // [E], [E, S] = -exp(A_log), [E]
};

struct MambaBlock {
  NormLayer norm;
  LinearLayer in_x, in_z, out_proj;   // in_proj split into its xi and z halves
  std::array<MambaBranch, 3> branches;

  static MambaBlock load(const ParameterReader& reader, int dt_rank, int d_state);
  // x [N, D, H, W, C] (not normalised); returns x + out_proj(y): the block with its skip
  // connection (the block's norm is applied inside).
  Tensor forward(const Tensor& x) const;
};

}  // namespace voxmamba::models
