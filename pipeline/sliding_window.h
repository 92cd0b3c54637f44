#pragma once
// Sliding-window inference maths, as nnU-Net v2 does it
// (nnunetv2/inference/sliding_window_prediction.py, predict_from_raw_data.py): where the
// tiles go, how each tile's prediction is weighted, how the weighted predictions are
// averaged, and the padding, cropping and mirroring around them. Pure functions on CPU
// tensors; the segment job runs the network on the tiles.
//
// Volumes are channels-last [D, H, W, C] (or [D, H, W] where noted); spatial triples are
// always in (d, h, w) order.
#include <array>
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace voxmamba::pipeline {

// nnU-Net v2's compute_steps_for_sliding_window for one axis: the target step is
// patch_size * step_fraction; the number of tiles is ceil((image - patch) / step) + 1; the
// starts are spread evenly from 0 to image - patch and rounded half-to-even (np.round).
// `image_size` must be >= `patch_size` (pad first: pad_to_at_least); step_fraction in (0, 1].
std::vector<std::int64_t> window_starts(std::int64_t image_size, std::int64_t patch_size,
                                        double step_fraction);

struct Window {
  std::array<std::int64_t, 3> begin;  // first voxel (d, h, w)
  std::array<std::int64_t, 3> size;   // the patch size
};

// Every combination of the per-axis starts, d slowest, w fastest; step = 1 - overlap,
// overlap in [0, 1) (nnU-Net's default tile_step_size 0.5 is overlap 0.5).
std::vector<Window> sliding_windows(const std::array<std::int64_t, 3>& image,
                                    const std::array<std::int64_t, 3>& patch, double overlap);

// nnU-Net v2's compute_gaussian: a Gaussian centred at patch // 2 with sigma = patch *
// sigma_scale per axis, cut off beyond scipy's default truncate = 4 sigma, scaled so that its
// maximum is 1, then zeros replaced by the smallest non-zero value so every voxel of a tile
// keeps some weight (nnU-Net: "cannot be 0, otherwise we may end up with nans"). Shape
// [D, H, W] float32. Tiles' borders, where the network sees the least context, weigh least.
Tensor gaussian_importance_map(const std::array<std::int64_t, 3>& patch, double sigma_scale = 1.0 / 8);

// fp32 sums of importance-weighted class probabilities and of the importances over a whole
// volume; result() is their ratio, the blended prediction. This is nnU-Net's
// predicted_logits / n_predictions, except that we blend probabilities (after softmax).
class SlidingWindowAccumulator {
 public:
  SlidingWindowAccumulator(const std::array<std::int64_t, 3>& volume_size, std::int64_t channels);

  // patch_probabilities: [pd, ph, pw, C] (or [1, pd, ph, pw, C], a network output of batch 1);
  // importance: [pd, ph, pw]. Both f32 on the CPU, with (pd, ph, pw) == window.size and the
  // window inside the volume.
  void add(const Window& window, const Tensor& patch_probabilities, const Tensor& importance);

  // The weighted average [D, H, W, C]. Throws an Error naming the first voxel (d, h, w order)
  // that no window covered.
  Tensor result() const;

  const std::array<std::int64_t, 3>& volume_size() const { return size_; }
  std::int64_t channels() const { return channels_; }

 private:
  std::array<std::int64_t, 3> size_;
  std::int64_t channels_;
  Tensor weighted_sum_;  // [D, H, W, C]: sum of importance * probability
  Tensor weight_sum_;    // [D, H, W]: sum of importance
};

// The smallest multiple of `multiple` that is >= size (the network needs sizes divisible by
// its total downsampling, 16 here).
std::int64_t round_up_to_multiple(std::int64_t size, std::int64_t multiple);

// Pads each spatial axis of `volume` ([D, H, W] or [D, H, W, C], any dtype) with zeros up to
// `minimum` where it is smaller, half below and half (plus the odd voxel) above, as nnU-Net's
// pad_nd_image for images smaller than the patch. `offset`, if given, receives where the
// original volume starts inside the result, for crop() to undo it. Always returns a new tensor.
Tensor pad_to_at_least(const Tensor& volume, const std::array<std::int64_t, 3>& minimum,
                       std::array<std::int64_t, 3>* offset);

// The sub-volume [offset, offset + size) of a [D, H, W] or [D, H, W, C] tensor (any dtype), as
// a new tensor; the box must lie inside the volume.
Tensor crop(const Tensor& volume, const std::array<std::int64_t, 3>& offset,
            const std::array<std::int64_t, 3>& size);

// The inverse of crop(): copies `source` into `destination` at `offset` (same rank, channel
// count and dtype; the box must fit).
void paste(const Tensor& source, const std::array<std::int64_t, 3>& offset, Tensor& destination);

// The mirrors of test-time augmentation, as kernels::flip axis masks: {0} without TTA; all 8
// subsets of the 3 axes with it (nnU-Net mirrors over all axes: 8 passes whose predictions are
// averaged).
std::vector<int> mirror_axis_masks(bool tta);

}  // namespace voxmamba::pipeline
