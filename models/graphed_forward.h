#pragma once
// VoxMambaNet::forward recorded once per input shape as a CUDA graph and replayed after: the
// sliding window runs one patch shape hundreds of times, and a replay queues the whole
// forward as one launch instead of several hundred (kernels::record_gpu_graph). On the CPU it
// is the plain forward.
#include <memory>

#include "kernels/backend.h"
#include "models/voxmamba_net.h"

namespace voxmamba::models {

class GraphedForward {
 public:
  // `net` must outlive this object. `record` false: always the plain forward (for comparisons).
  explicit GraphedForward(const VoxMambaNet& net, bool record = true);

  // net.forward(x). On a GPU, the first input of a shape and type runs eagerly (cuDNN chooses
  // its plans, caches warm up) and then records the forward on a buffer of that shape; later
  // ones copy x there and replay. The logits returned are the caller's own tensor.
  Tensor forward(const Tensor& x);
  // Whether the last forward was a replay.
  bool replayed() const { return replayed_; }

 private:
  const VoxMambaNet& net_;
  bool record_;
  bool replayed_ = false;
  Tensor input_, output_;  // the recording's buffers
  std::unique_ptr<kernels::GpuGraph> graph_;
};

}  // namespace voxmamba::models
