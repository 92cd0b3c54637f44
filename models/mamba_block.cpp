#include "models/mamba_block.h"

#include <cmath>

namespace voxmamba::models {
namespace {

// dt_proj [E, R] packed to [padded, E] with zero rows from R to padded: the dt rank (3 for 48
// channels) is padded to gemm_aligned(R) (layers.h).
LinearLayer padded_dt_proj(const ParameterReader& reader, std::int64_t padded) {
  const Tensor& weight = reader.get("weight");  // [E, R]
  const std::int64_t E = weight.dim(0), R = weight.dim(1);
  Tensor packed = Tensor::zeros({padded, E});
  const Tensor source = pack_linear_weight(weight);  // [R, E]
  std::copy(source.data<float>(), source.data<float>() + R * E, packed.data<float>());
  return LinearLayer::from_packed(reader.upload_matrix(packed));
}

}  // namespace

MambaBlock MambaBlock::load(const ParameterReader& reader, int dt_rank, int d_state) {
  MambaBlock block;
  block.norm = NormLayer::load(reader.child("norm"));
  const Tensor& in_proj = reader.get("in_proj/weight");  // [2E, C]
  const std::int64_t E = in_proj.dim(0) / 2;
  block.in_x = linear_rows(reader, in_proj, 0, E, E);
  block.in_z = linear_rows(reader, in_proj, E, E, E);
  block.out_proj = LinearLayer::load(reader.child("out_proj"), false);
  for (std::size_t o = 0; o < kernels::kTokenOrders.size(); ++o) {
    MambaBranch& branch = block.branches[o];
    branch.order = kernels::kTokenOrders[o];
    const ParameterReader r = reader.child(kernels::token_order_name(branch.order));
    branch.conv_weight = r.upload(pack_linear_weight(r.get("conv1d/weight").reshape({E, r.get("conv1d/weight").dim(2)})));
    branch.conv_bias = r.tensor("conv1d/bias");
    const Tensor& x_proj = r.get("x_proj/weight");  // [R + 2S, E], rows ordered [dt_in, B, C]
    const std::int64_t rank = gemm_aligned(dt_rank);
    branch.x_to_dt = linear_rows(r, x_proj, 0, dt_rank, rank);
    branch.x_to_B = linear_rows(r, x_proj, dt_rank, d_state, d_state);
    branch.x_to_C = linear_rows(r, x_proj, dt_rank + d_state, d_state, d_state);
    branch.dt_proj = padded_dt_proj(r.child("dt_proj"), rank);
    branch.dt_bias = r.tensor("dt_proj/bias");
    Tensor A = r.get("A_log").clone();
    for (std::int64_t i = 0; i < A.numel(); ++i) A.data<float>()[i] = -std::exp(A.data<float>()[i]);
    branch.A = r.upload(A);
    branch.D = r.tensor("D");
  }
  return block;
}

Tensor MambaBlock::forward(const Tensor& x) const {
  const Shape volume_shape = x.shape();
  const kernels::VolumeShape volume{x.dim(1), x.dim(2), x.dim(3)};
  const Tensor tokens = norm.layer_norm(x).reshape({x.dim(0), volume.tokens(), x.dim(4)});
  const Tensor xi = in_x.forward(tokens);
  // The orientations' outputs are summed, and the sum gated, by the scans themselves: each
  // adds the previous ones' sum, the last one multiplies by SiLU(z) (ops.h). H200, base
  // 128^3, CUDA graph, two rounds: fp16 35.29 -> 35.19 ms, bf16 39.30 -> 39.11 ms against a
  // separate add per orientation and a SiLU and a product for the gate.
  const Tensor z = in_z.forward(tokens);
  Tensor y_sum;
  for (const MambaBranch& branch : branches) {
    kernels::ScanInputs scan;
    scan.u = kernels::causal_conv1d(xi, branch.conv_weight, branch.conv_bias, branch.order, volume, true);
    scan.delta = branch.dt_proj.forward(branch.x_to_dt.forward(scan.u));
    scan.B = branch.x_to_B.forward(scan.u);
    scan.C = branch.x_to_C.forward(scan.u);
    scan.delta_bias = branch.dt_bias;
    scan.A = branch.A;
    scan.D = branch.D;
    scan.sum = y_sum;
    if (&branch == &branches.back()) scan.gate = z;
    y_sum = kernels::selective_scan(scan, branch.order, volume);
  }
  return out_proj.forward(y_sum).reshape(volume_shape);
}

}  // namespace voxmamba::models
