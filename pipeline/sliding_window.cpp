#include "pipeline/sliding_window.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "core/error.h"
#include "core/thread_pool.h"

namespace voxmamba::pipeline {

namespace {

using Triple = std::array<std::int64_t, 3>;

std::string triple_string(const Triple& t) {
  return "(" + std::to_string(t[0]) + ", " + std::to_string(t[1]) + ", " + std::to_string(t[2]) + ")";
}

// A [D, H, W] or [D, H, W, C] CPU tensor seen as a grid of voxels of `voxel_bytes` bytes each.
struct VoxelGrid {
  Triple size;
  std::int64_t channels;  // 1 for [D, H, W]
  std::size_t voxel_bytes;
};

VoxelGrid voxel_grid(const Tensor& t, const char* what) {
  if (!t.defined()) throw Error(what, "undefined tensor");
  if (!t.device().is_cpu()) throw Error(what, "expects a CPU tensor");
  if (t.rank() != 3 && t.rank() != 4) {
    throw Error(what, "expects [D, H, W] or [D, H, W, C], got " + shape_string(t.shape()));
  }
  const std::int64_t channels = t.rank() == 4 ? t.dim(3) : 1;
  return {
      {t.dim(0), t.dim(1), t.dim(2)}, channels, static_cast<std::size_t>(channels) * dtype_size(t.dtype())};
}

// Copies a box of `size` voxels from `source` at `from` to `destination` at `to`, one
// contiguous W row at a time.
void copy_box(const Tensor& source, const VoxelGrid& s, const Triple& from, Tensor& destination,
              const VoxelGrid& d, const Triple& to, const Triple& size) {
  const auto* in = static_cast<const std::uint8_t*>(source.raw_data());
  auto* out = static_cast<std::uint8_t*>(destination.raw_data());
  const std::size_t row_bytes = static_cast<std::size_t>(size[2]) * s.voxel_bytes;
  if (row_bytes == 0) return;
  parallel_for(size[0] * size[1], 16, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t row = begin; row < end; ++row) {
      const std::int64_t z = row / size[1], y = row % size[1];
      const std::int64_t src = ((from[0] + z) * s.size[1] + from[1] + y) * s.size[2] + from[2];
      const std::int64_t dst = ((to[0] + z) * d.size[1] + to[1] + y) * d.size[2] + to[2];
      std::memcpy(out + dst * d.voxel_bytes, in + src * s.voxel_bytes, row_bytes);
    }
  });
}

void check_box_inside(const char* what, const Triple& offset, const Triple& size, const Triple& volume) {
  for (int a = 0; a < 3; ++a) {
    if (offset[a] < 0 || size[a] < 0 || offset[a] + size[a] > volume[a]) {
      throw Error(what, "box at " + triple_string(offset) + " of size " + triple_string(size) +
                            " does not fit in a volume of size " + triple_string(volume));
    }
  }
}

}  // namespace

std::vector<std::int64_t> window_starts(std::int64_t image_size, std::int64_t patch_size,
                                        double step_fraction) {
  if (patch_size < 1)
    throw Error("sliding window", "patch size must be positive, got " + std::to_string(patch_size));
  if (image_size < patch_size) {
    throw Error("sliding window", "image size " + std::to_string(image_size) +
                                      " is smaller than the patch size " + std::to_string(patch_size) +
                                      "; pad the image first");
  }
  if (!(step_fraction > 0 && step_fraction <= 1)) {
    throw Error("sliding window", "step fraction must be in (0, 1], got " + std::to_string(step_fraction));
  }
  // Same float64 operations in the same order as nnU-Net, so the rounding agrees with it too.
  const double target_step = static_cast<double>(patch_size) * step_fraction;
  const std::int64_t max_start = image_size - patch_size;
  const std::int64_t count =
      static_cast<std::int64_t>(std::ceil(static_cast<double>(max_start) / target_step)) + 1;
  if (count <= 1) return {0};
  const double actual_step = static_cast<double>(max_start) / static_cast<double>(count - 1);
  std::vector<std::int64_t> starts;
  starts.reserve(static_cast<std::size_t>(count));
  // std::nearbyint in the default rounding mode rounds half to even, as np.round.
  for (std::int64_t i = 0; i < count; ++i) {
    starts.push_back(static_cast<std::int64_t>(std::nearbyint(actual_step * static_cast<double>(i))));
  }
  return starts;
}

std::vector<Window> sliding_windows(const Triple& image, const Triple& patch, double overlap) {
  if (!(overlap >= 0 && overlap < 1)) {
    throw Error("sliding window", "overlap must be in [0, 1), got " + std::to_string(overlap));
  }
  const double step = 1.0 - overlap;
  std::array<std::vector<std::int64_t>, 3> starts;
  for (int a = 0; a < 3; ++a) starts[a] = window_starts(image[a], patch[a], step);
  std::vector<Window> windows;
  windows.reserve(starts[0].size() * starts[1].size() * starts[2].size());
  for (std::int64_t d : starts[0]) {
    for (std::int64_t h : starts[1]) {
      for (std::int64_t w : starts[2]) windows.push_back({{d, h, w}, patch});
    }
  }
  return windows;
}

Tensor gaussian_importance_map(const Triple& patch, double sigma_scale) {
  if (!(sigma_scale > 0)) throw Error("gaussian importance map", "sigma scale must be positive");
  // nnU-Net filters a centred delta with scipy.ndimage.gaussian_filter; the response of a
  // separable, normalised kernel to a delta is the product of per-axis Gaussians, zero beyond
  // the kernel radius int(4 * sigma + 0.5). Dividing by the maximum cancels the kernels'
  // normalisation, leaving exp(-d^2 / 2 sigma^2) per axis with 1 at the centre.
  std::array<std::vector<double>, 3> profile;
  for (int a = 0; a < 3; ++a) {
    if (patch[a] < 1)
      throw Error("gaussian importance map", "patch size must be positive, got " + triple_string(patch));
    const std::int64_t center = patch[a] / 2;
    const double sigma = static_cast<double>(patch[a]) * sigma_scale;
    const std::int64_t radius = static_cast<std::int64_t>(4.0 * sigma + 0.5);
    profile[a].resize(static_cast<std::size_t>(patch[a]));
    for (std::int64_t x = 0; x < patch[a]; ++x) {
      const double distance = static_cast<double>(x - center);
      profile[a][x] =
          std::abs(x - center) <= radius ? std::exp(-0.5 * distance * distance / (sigma * sigma)) : 0.0;
    }
  }
  Tensor map = Tensor::empty({patch[0], patch[1], patch[2]});
  float* out = map.data<float>();
  float smallest = std::numeric_limits<float>::max();
  std::int64_t i = 0;
  for (std::int64_t z = 0; z < patch[0]; ++z) {
    for (std::int64_t y = 0; y < patch[1]; ++y) {
      for (std::int64_t x = 0; x < patch[2]; ++x, ++i) {
        out[i] = static_cast<float>(profile[0][z] * profile[1][y] * profile[2][x]);
        if (out[i] > 0) smallest = std::min(smallest, out[i]);
      }
    }
  }
  // nnU-Net keeps this map in fp16 (max 10); we keep it in fp32 (max 1), so fewer values
  // underflow to zero, but those that do get the same treatment.
  const std::int64_t values = map.numel();
  for (std::int64_t j = 0; j < values; ++j) {
    if (out[j] == 0) out[j] = smallest;
  }
  return map;
}

SlidingWindowAccumulator::SlidingWindowAccumulator(const Triple& volume_size, std::int64_t channels)
    : size_(volume_size), channels_(channels) {
  for (int a = 0; a < 3; ++a) {
    if (volume_size[a] < 1)
      throw Error("sliding window", "volume size must be positive, got " + triple_string(volume_size));
  }
  if (channels < 1)
    throw Error("sliding window", "channel count must be positive, got " + std::to_string(channels));
  weighted_sum_ = Tensor::zeros({size_[0], size_[1], size_[2], channels_});
  weight_sum_ = Tensor::zeros({size_[0], size_[1], size_[2]});
}

void SlidingWindowAccumulator::add(const Window& window, const Tensor& patch_probabilities,
                                   const Tensor& importance) {
  const Triple& p = window.size;
  for (int a = 0; a < 3; ++a) {
    if (p[a] < 1 || window.begin[a] < 0 || window.begin[a] + p[a] > size_[a]) {
      throw Error("sliding window", "window at " + triple_string(window.begin) + " of size " +
                                        triple_string(p) + " does not fit in the volume " +
                                        triple_string(size_));
    }
  }
  const Shape patch_shape = {p[0], p[1], p[2], channels_};
  const Shape batch_shape = {1, p[0], p[1], p[2], channels_};
  if (patch_probabilities.shape() != patch_shape && patch_probabilities.shape() != batch_shape) {
    throw Error("sliding window", "patch probabilities " + shape_string(patch_probabilities.shape()) +
                                      " do not match the window, expected " + shape_string(patch_shape));
  }
  if (importance.shape() != Shape{p[0], p[1], p[2]}) {
    throw Error("sliding window", "importance map " + shape_string(importance.shape()) +
                                      " does not match the window size " + triple_string(p));
  }
  if (!patch_probabilities.device().is_cpu() || !importance.device().is_cpu()) {
    throw Error("sliding window", "the accumulator takes CPU tensors");
  }
  const float* probabilities = patch_probabilities.data<float>();
  const float* weights = importance.data<float>();
  // A zero weight would make a voxel look uncovered (or divide by zero) in result(). The count
  // is read once and the test has no branch, so the loop vectorises: asking numel() for every
  // value took 5.7-6.0 ms a 128^3 window, 0.8-0.9 ms now (the development machine's CPU).
  const std::int64_t weight_count = importance.numel();
  bool all_positive = true;
  for (std::int64_t i = 0; i < weight_count; ++i) all_positive &= weights[i] > 0;
  if (!all_positive) throw Error("sliding window", "importance map has a value that is not positive");
  float* sum = weighted_sum_.data<float>();
  float* weight_sum = weight_sum_.data<float>();
  const std::int64_t channels = channels_;
  const Triple volume = size_;
  const Triple begin_at = window.begin;
  // Rows of one window never overlap, so each task owns its voxels.
  parallel_for(p[0] * p[1], 4, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t row = begin; row < end; ++row) {
      const std::int64_t z = row / p[1], y = row % p[1];
      const std::int64_t voxel = ((begin_at[0] + z) * volume[1] + begin_at[1] + y) * volume[2] + begin_at[2];
      for (std::int64_t x = 0; x < p[2]; ++x) {
        const float w = weights[row * p[2] + x];
        weight_sum[voxel + x] += w;
        const float* q = probabilities + (row * p[2] + x) * channels;
        float* s = sum + (voxel + x) * channels;
        for (std::int64_t c = 0; c < channels; ++c) s[c] += w * q[c];
      }
    }
  });
}

Tensor SlidingWindowAccumulator::result() const {
  const float* weight_sum = weight_sum_.data<float>();
  const std::int64_t voxels = weight_sum_.numel();
  for (std::int64_t v = 0; v < voxels; ++v) {
    if (!(weight_sum[v] > 0)) {
      const Triple at = {v / (size_[1] * size_[2]), (v / size_[2]) % size_[1], v % size_[2]};
      throw Error("sliding window",
                  "voxel (d, h, w) = " + triple_string(at) + " is not covered by any window");
    }
  }
  Tensor out = Tensor::empty(weighted_sum_.shape());
  const float* sum = weighted_sum_.data<float>();
  float* average = out.data<float>();
  const std::int64_t channels = channels_;
  parallel_for(voxels, 4096, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t v = begin; v < end; ++v) {
      for (std::int64_t c = 0; c < channels; ++c)
        average[v * channels + c] = sum[v * channels + c] / weight_sum[v];
    }
  });
  return out;
}

std::int64_t round_up_to_multiple(std::int64_t size, std::int64_t multiple) {
  if (multiple < 1 || size < 0) {
    throw Error("round_up_to_multiple: size " + std::to_string(size) + ", multiple " +
                std::to_string(multiple));
  }
  return (size + multiple - 1) / multiple * multiple;
}

Tensor pad_to_at_least(const Tensor& volume, const Triple& minimum, Triple* offset) {
  const VoxelGrid in = voxel_grid(volume, "pad");
  Shape padded_shape = volume.shape();
  Triple start{};
  for (int a = 0; a < 3; ++a) {
    const std::int64_t target = std::max(in.size[a], minimum[a]);
    start[a] = (target - in.size[a]) / 2;  // nnU-Net: pad_below = difference // 2
    padded_shape[a] = target;
  }
  Tensor padded = Tensor::zeros(padded_shape, volume.dtype());
  paste(volume, start, padded);
  if (offset) *offset = start;
  return padded;
}

Tensor crop(const Tensor& volume, const Triple& offset, const Triple& size) {
  const VoxelGrid in = voxel_grid(volume, "crop");
  check_box_inside("crop", offset, size, in.size);
  Shape shape = volume.shape();
  for (int a = 0; a < 3; ++a) shape[a] = size[a];
  Tensor out = Tensor::empty(shape, volume.dtype());
  copy_box(volume, in, offset, out, voxel_grid(out, "crop"), {0, 0, 0}, size);
  return out;
}

void paste(const Tensor& source, const Triple& offset, Tensor& destination) {
  const VoxelGrid in = voxel_grid(source, "paste");
  const VoxelGrid out = voxel_grid(destination, "paste");
  if (source.rank() != destination.rank() || in.channels != out.channels ||
      source.dtype() != destination.dtype()) {
    throw Error("paste", "source " + shape_string(source.shape()) + " " + dtype_name(source.dtype()) +
                             " does not match destination " + shape_string(destination.shape()) + " " +
                             dtype_name(destination.dtype()));
  }
  check_box_inside("paste", offset, in.size, out.size);
  copy_box(source, in, {0, 0, 0}, destination, out, offset, in.size);
}

std::vector<int> mirror_axis_masks(bool tta) {
  if (!tta) return {0};
  return {0, 1, 2, 3, 4, 5, 6, 7};
}

}  // namespace voxmamba::pipeline
