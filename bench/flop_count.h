#pragma once
// Analytic FLOP count of one VoxMambaNet forward (multiply-add = 2 FLOPs), for GFLOP/s in
// the benchmarks. Counts convolutions, linear maps and the scan's state update; norms and
// activations are a rounding error next to them and are left out.
#include "models/network_config.h"

namespace voxmamba::bench {

double forward_flops(const models::NetworkConfig& config, int size);

}  // namespace voxmamba::bench
