#pragma once
// `voxmamba forward`: the network alone on a raw N D H W C float32 NPY array.
#include <string>

#include "core/device.h"

namespace voxmamba::pipeline {

struct ForwardRequest {
  std::string weights, input, output;
  Device device = Device::cpu();
};

struct ForwardResult {
  double seconds = 0;  // the network's forward pass alone
  std::string output_shape;
};

// Validates everything before any work (files, dtype, rank, channels, multiples of 16) and
// writes the logits atomically. Errors name the offending file.
ForwardResult run_forward(const ForwardRequest& request);

}  // namespace voxmamba::pipeline
