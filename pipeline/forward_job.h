#pragma once
// `voxmamba forward`: the network alone on a raw N D H W C float32 NPY array.
#include <string>

#include "core/device.h"
#include "pipeline/model_store.h"

namespace voxmamba::pipeline {

struct ForwardRequest {
  std::string weights, input, output;
  std::string device = "auto";     // see choose_device
  std::string precision = "auto";  // see choose_precision
};

struct ForwardResult {
  double seconds = 0;  // the forward pass, with the copies to and from the device
  std::string output_shape;
  Device device;
  DType precision = DType::f32;
};

// Validates everything before any work (files, dtype, rank, channels, multiples of 16) and
// writes the logits atomically. Errors name the offending file.
ForwardResult run_forward(const ForwardRequest& request);

}  // namespace voxmamba::pipeline
