#pragma once
// Sliding-window inference over a prepared volume (pipeline.md, "voxmamba segment"): patches
// of the model's size with step patch * (1 - overlap), each weighted by the Gaussian
// importance map, optionally mirrored over all axes (TTA), softmax probabilities accumulated
// in fp32 on the host so the volume's size is bounded by host memory, not the GPU's.
#include <array>
#include <functional>

#include "models/voxmamba_net.h"

namespace voxmamba::pipeline {

struct SlidingWindowOptions {
  std::array<std::int64_t, 3> patch_size{128, 128, 128};
  double overlap = 0.5;
  bool mirror = true;  // TTA: all 8 flips
  // On a GPU: the patch forward is recorded once as a CUDA graph and replayed (models/graphed_forward.h).
  bool cuda_graph = true;
};

// Called after each network pass with (done, total).
using ProgressCallback = std::function<void(std::int64_t, std::int64_t)>;

// volume [D, H, W, C] float32 on the CPU, at least patch_size on every axis (pad first) ->
// class probabilities [D, H, W, classes].
Tensor predict_probabilities(const models::VoxMambaNet& net, const Tensor& volume,
                             const SlidingWindowOptions& options, const ProgressCallback& progress = {});

}  // namespace voxmamba::pipeline
