#include "bench/flop_count.h"

namespace voxmamba::bench {

double forward_flops(const models::NetworkConfig& c, int size) {
  double flops = 0;
  auto voxels = [&](int level) {  // level 0 = input resolution
    const double edge = static_cast<double>(size) / (1 << level);
    return edge * edge * edge;
  };
  auto conv = [&](int level, double in, double out, double taps) { flops += 2 * voxels(level) * in * out * taps; };
  auto res_block = [&](int level, double in, double out) {
    conv(level, in, out, 27);
    conv(level, out, out, 27);
    if (in != out) conv(level, in, out, 1);
  };
  conv(1, c.in_channels, c.dims[0], 343);
  for (int i = 0; i < models::kStages; ++i) {
    const int level = i + 1;
    const double C = c.dims[i], E = c.inner_channels(i), R = c.dt_rank(i), S = c.d_state;
    if (i > 0) conv(level, c.dims[i - 1], C, 8);
    for (int j = 0; j < c.depths[i]; ++j) {
      conv(level, C, C, 3);                         // proj1, proj2, LKA pw
      conv(level, C, 1, 125 + 343);                 // depthwise 5^3 and 7^3
      if (c.deformable[i]) {
        conv(level, C, 1, 2 * 27);                  // offset dw3 x2
        conv(level, C, 3 * (125 + 343), 1);         // offset pw heads
        flops += 2 * voxels(level) * C * (125 + 343) * 8;  // trilinear gathers
      }
      conv(level, C, 2 * E, 1);                     // in_proj
      conv(level, E, C, 1);                         // out_proj
      for (int o = 0; o < 3; ++o) {
        conv(level, E, 1, c.d_conv);                // causal conv1d
        conv(level, E, R + 2 * S, 1);               // x_proj
        conv(level, R, E, 1);                       // dt_proj
        flops += voxels(level) * E * S * 6;         // scan: decay, update, readout
      }
    }
    conv(level, C, 4 * C, 1);                       // MLP fc1 + fc2
  }
  res_block(0, c.in_channels, c.dims[0]);
  for (int i = 1; i < 4; ++i) res_block(i, c.dims[i - 1], c.dims[i]);  // enc1..enc3
  res_block(4, c.dims[3], c.hidden);                                    // bott
  const int up_in[4] = {c.hidden, c.dims[3], c.dims[2], c.dims[1]};
  for (int u = 0; u < 4; ++u) {
    const int level = 3 - u, channels = c.dims[3 - u];  // dec3 .. dec0
    conv(level + 1, up_in[u], channels, 8);             // transposed conv, per input voxel
    res_block(level, 2 * channels, channels);
  }
  res_block(0, c.dims[0], c.dims[0]);
  conv(0, c.dims[0], c.num_classes, 1);
  return flops;
}

}  // namespace voxmamba::bench
