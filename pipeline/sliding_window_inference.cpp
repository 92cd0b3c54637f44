#include "pipeline/sliding_window_inference.h"

#include "kernels/ops.h"
#include "models/graphed_forward.h"
#include "pipeline/model_store.h"
#include "pipeline/sliding_window.h"

namespace voxmamba::pipeline {

Tensor predict_probabilities(const models::VoxMambaNet& net, const Tensor& volume,
                             const SlidingWindowOptions& options, const ProgressCallback& progress) {
  if (volume.rank() != 4) throw Error("sliding window: volume must be [D, H, W, C], got " + shape_string(volume.shape()));
  const std::array<std::int64_t, 3> size{volume.dim(0), volume.dim(1), volume.dim(2)};
  const std::vector<Window> windows = sliding_windows(size, options.patch_size, options.overlap);
  const std::vector<int> mirrors = mirror_axis_masks(options.mirror);
  const Tensor importance = gaussian_importance_map(options.patch_size);
  SlidingWindowAccumulator accumulator(size, net.config().num_classes);
  const std::int64_t total = static_cast<std::int64_t>(windows.size() * mirrors.size());
  std::int64_t done = 0;
  const Shape batch_shape{1, options.patch_size[0], options.patch_size[1], options.patch_size[2], volume.dim(3)};
  // The mirrored passes of a window are flipped, summed and averaged where the network runs,
  // so each window crosses to a GPU once each way rather than once per pass. Without TTA there
  // is nothing to average.
  Tensor mirror_scale;
  if (mirrors.size() > 1) {
    mirror_scale =
        Tensor::full({1, options.patch_size[0], options.patch_size[1], options.patch_size[2], net.config().num_classes},
                     1.0f / static_cast<float>(mirrors.size()))
            .to(net.device());
  }
  models::GraphedForward forward(net, options.cuda_graph);
  for (const Window& window : windows) {
    const Tensor patch = crop(volume, window.begin, window.size).reshape(batch_shape).to(net.device());
    Tensor sum;  // the mirrored passes' mean, then one weighted add
    for (int mask : mirrors) {
      const Tensor logits = forward.forward(kernels::flip(patch, mask));
      const Tensor probabilities = kernels::flip(kernels::softmax(logits), mask);
      sum = sum.defined() ? kernels::add(sum, probabilities) : probabilities;
      if (progress) progress(++done, total);
    }
    if (mirrors.size() > 1) sum = kernels::mul(sum, mirror_scale);
    accumulator.add(window, sum.to(Device::cpu()), importance);
  }
  // NaN and infinity survive the softmax and the accumulation, so one look at the end finds them.
  Tensor result = accumulator.result();
  require_finite_output(result, net.activations());
  return result;
}

}  // namespace voxmamba::pipeline
