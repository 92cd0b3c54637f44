#include "pipeline/intensity.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "pipeline/sliding_window.h"

namespace voxmamba::pipeline {

namespace {

using Triple = std::array<std::int64_t, 3>;

std::string triple_string(const Triple& t) {
  return "(" + std::to_string(t[0]) + ", " + std::to_string(t[1]) + ", " + std::to_string(t[2]) + ")";
}

struct FloatVolume {
  Triple size;
  std::int64_t channels;  // 1 for [D, H, W]
  std::int64_t voxels;
};

FloatVolume float_volume(const Tensor& volume, const char* what) {
  if (!volume.defined() || !volume.device().is_cpu()) throw Error(what, "expects a CPU tensor");
  if (volume.dtype() != DType::f32)
    throw Error(what, std::string("expects float32, got ") + dtype_name(volume.dtype()));
  if (volume.rank() != 3 && volume.rank() != 4) {
    throw Error(what, "expects [D, H, W] or [D, H, W, C], got " + shape_string(volume.shape()));
  }
  const Triple size = {volume.dim(0), volume.dim(1), volume.dim(2)};
  return {size, volume.rank() == 4 ? volume.dim(3) : 1, size[0] * size[1] * size[2]};
}

// Sums term(v) over voxels in blocks of a fixed size, then the blocks in order, so that the
// statistics (and hence the normalised image) do not depend on the number of threads.
template <typename Term>
double deterministic_sum(std::int64_t voxels, const Term& term) {
  constexpr std::int64_t kBlock = 1 << 15;
  const std::int64_t blocks = (voxels + kBlock - 1) / kBlock;
  std::vector<double> partial(static_cast<std::size_t>(blocks), 0.0);
  parallel_for(blocks, 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t b = begin; b < end; ++b) {
      double sum = 0;
      for (std::int64_t v = b * kBlock; v < std::min(voxels, (b + 1) * kBlock); ++v) sum += term(v);
      partial[b] = sum;
    }
  });
  double total = 0;
  for (double p : partial) total += p;
  return total;
}

}  // namespace

void normalize_ct(Tensor& volume, const IntensityStats& stats) {
  const FloatVolume v = float_volume(volume, "CT normalisation");
  if (v.channels != 1) {
    throw Error("CT normalisation", "statistics are for one channel, the volume " +
                                        shape_string(volume.shape()) + " has " + std::to_string(v.channels) +
                                        "; name the channel");
  }
  normalize_ct(volume, 0, stats);
}

void normalize_ct(Tensor& volume, int channel, const IntensityStats& stats) {
  const FloatVolume v = float_volume(volume, "CT normalisation");
  if (channel < 0 || channel >= v.channels) {
    throw Error("CT normalisation",
                "channel " + std::to_string(channel) + " out of range for " + shape_string(volume.shape()));
  }
  const double lower = stats.percentile_00_5, upper = stats.percentile_99_5;
  if (!(lower <= upper) || !std::isfinite(stats.mean) || !std::isfinite(stats.std)) {
    throw Error("CT normalisation", "invalid statistics: percentiles [" + std::to_string(lower) + ", " +
                                        std::to_string(upper) + "], mean " + std::to_string(stats.mean) +
                                        ", std " + std::to_string(stats.std));
  }
  const double mean = stats.mean, denominator = std::max(stats.std, 1e-8);
  float* data = volume.data<float>();
  const std::int64_t channels = v.channels;
  parallel_for(v.voxels, 4096, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) {
      float& x = data[i * channels + channel];
      x = static_cast<float>((std::clamp(static_cast<double>(x), lower, upper) - mean) / denominator);
    }
  });
}

void normalize_zscore_nonzero(Tensor& volume) {
  const FloatVolume v = float_volume(volume, "z-score normalisation");
  float* data = volume.data<float>();
  const std::int64_t channels = v.channels;
  // nnU-Net's create_nonzero_mask: a voxel belongs to the mask when any channel is non-zero.
  std::vector<std::uint8_t> mask(static_cast<std::size_t>(v.voxels));
  parallel_for(v.voxels, 4096, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) {
      bool any = false;
      for (std::int64_t c = 0; c < channels; ++c) any = any || data[i * channels + c] != 0.0f;
      mask[i] = any;
    }
  });
  const double in_mask =
      deterministic_sum(v.voxels, [&](std::int64_t i) { return static_cast<double>(mask[i]); });
  const bool use_all = in_mask < 2;
  if (use_all) std::fill(mask.begin(), mask.end(), std::uint8_t{1});
  const double count = use_all ? static_cast<double>(v.voxels) : in_mask;
  for (std::int64_t c = 0; c < channels; ++c) {
    const float* x = data + c;
    const double mean =
        deterministic_sum(
            v.voxels, [&](std::int64_t i) { return mask[i] ? static_cast<double>(x[i * channels]) : 0.0; }) /
        count;
    // Two passes: the variance of CT-like values (mean ~1000) loses digits as E[x^2] - mean^2.
    const double variance = deterministic_sum(v.voxels,
                                              [&](std::int64_t i) {
                                                const double d = x[i * channels] - mean;
                                                return mask[i] ? d * d : 0.0;
                                              }) /
                            count;
    const double denominator = std::max(std::sqrt(variance), 1e-8);
    parallel_for(v.voxels, 4096, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) {
        float& value = data[i * channels + c];
        value = mask[i] ? static_cast<float>((value - mean) / denominator) : 0.0f;
      }
    });
  }
}

CropBox nonzero_bounding_box(const Tensor& volume) {
  const FloatVolume v = float_volume(volume, "non-zero bounding box");
  const float* data = volume.data<float>();
  const std::int64_t depth = v.size[0], height = v.size[1], width = v.size[2], channels = v.channels;
  // Per d-slice extents in h and w (empty when lo > hi), combined afterwards.
  std::vector<std::array<std::int64_t, 4>> slice(static_cast<std::size_t>(depth));
  parallel_for(depth, 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t z = begin; z < end; ++z) {
      std::array<std::int64_t, 4> e = {height, -1, width, -1};  // h lo, h hi, w lo, w hi
      for (std::int64_t y = 0; y < height; ++y) {
        const float* row = data + (z * height + y) * width * channels;
        for (std::int64_t x = 0; x < width; ++x) {
          bool any = false;
          for (std::int64_t c = 0; c < channels; ++c) any = any || row[x * channels + c] != 0.0f;
          if (!any) continue;
          e = {std::min(e[0], y), std::max(e[1], y), std::min(e[2], x), std::max(e[3], x)};
        }
      }
      slice[z] = e;
    }
  });
  CropBox box = {{depth, height, width}, {-1, -1, -1}};  // inclusive maxima until the end
  for (std::int64_t z = 0; z < depth; ++z) {
    const auto& e = slice[z];
    if (e[1] < 0) continue;
    box.begin = {std::min(box.begin[0], z), std::min(box.begin[1], e[0]), std::min(box.begin[2], e[2])};
    box.end = {std::max(box.end[0], z), std::max(box.end[1], e[1]), std::max(box.end[2], e[3])};
  }
  if (box.end[0] < 0) return {{0, 0, 0}, v.size};
  for (int a = 0; a < 3; ++a) box.end[a] += 1;
  return box;
}

Tensor crop_to_box(const Tensor& volume, const CropBox& box) {
  Triple size;
  for (int a = 0; a < 3; ++a) {
    size[a] = box.end[a] - box.begin[a];
    if (size[a] < 1) {
      throw Error("crop", "empty box " + triple_string(box.begin) + " to " + triple_string(box.end));
    }
  }
  return crop(volume, box.begin, size);
}

Tensor uncrop(const Tensor& cropped, const CropBox& box, const Triple& full_size, float fill) {
  if (!cropped.defined() || (cropped.rank() != 3 && cropped.rank() != 4)) {
    throw Error("uncrop", "expects [D, H, W] or [D, H, W, C], got " + shape_string(cropped.shape()));
  }
  for (int a = 0; a < 3; ++a) {
    if (box.end[a] - box.begin[a] != cropped.dim(a)) {
      throw Error("uncrop", "box " + triple_string(box.begin) + " to " + triple_string(box.end) +
                                " does not match the cropped volume " + shape_string(cropped.shape()));
    }
  }
  Shape shape = {full_size[0], full_size[1], full_size[2]};
  if (cropped.rank() == 4) shape.push_back(cropped.dim(3));
  Tensor full = Tensor::empty(shape, cropped.dtype());
  const std::int64_t n = full.numel();
  const bool whole = std::nearbyint(fill) == fill;
  switch (cropped.dtype()) {
    case DType::f32:
      std::fill_n(full.data<float>(), n, fill);
      break;
    case DType::i32:
      if (!whole || std::abs(fill) > 2147483520.0f)
        throw Error("uncrop", "fill " + std::to_string(fill) + " is not an int32");
      std::fill_n(full.data<std::int32_t>(), n, static_cast<std::int32_t>(fill));
      break;
    case DType::u8:
      if (!whole || fill < 0 || fill > 255)
        throw Error("uncrop", "fill " + std::to_string(fill) + " is not a uint8");
      std::fill_n(full.data<std::uint8_t>(), n, static_cast<std::uint8_t>(fill));
      break;
    default:
      throw Error("uncrop", std::string("unsupported dtype ") + dtype_name(cropped.dtype()));
  }
  paste(cropped, box.begin, full);
  return full;
}

}  // namespace voxmamba::pipeline
