#include "pipeline/resample.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"

namespace voxmamba::pipeline {

namespace {

using Triple = std::array<std::int64_t, 3>;

std::string triple_string(const Triple& t) {
  return "(" + std::to_string(t[0]) + ", " + std::to_string(t[1]) + ", " + std::to_string(t[2]) + ")";
}

void check_volume(const Tensor& volume, const Triple& new_size, const char* what) {
  if (!volume.defined() || !volume.device().is_cpu()) throw Error(what, "expects a CPU tensor");
  if (volume.rank() != 3 && volume.rank() != 4) {
    throw Error(what, "expects [D, H, W] or [D, H, W, C], got " + shape_string(volume.shape()));
  }
  for (int a = 0; a < 3; ++a) {
    if (volume.dim(a) < 1 || new_size[a] < 1) {
      throw Error(what, "cannot resample " + shape_string(volume.shape()) + " to " + triple_string(new_size));
    }
  }
}

Shape resampled_shape(const Tensor& volume, const Triple& new_size) {
  Shape shape = volume.shape();
  for (int a = 0; a < 3; ++a) shape[a] = new_size[a];
  return shape;
}

// Where output voxel `dst` samples the input, in input voxel units, before clamping.
double source_coordinate(std::int64_t dst, std::int64_t in, std::int64_t out) {
  return (static_cast<double>(dst) + 0.5) * static_cast<double>(in) / static_cast<double>(out) - 0.5;
}

// For each output index along one axis: the two input neighbours and the weight of the second.
struct LinearTaps {
  std::vector<std::int64_t> first, second;
  std::vector<float> weight;
};

LinearTaps linear_taps(std::int64_t in, std::int64_t out) {
  LinearTaps taps;
  taps.first.resize(static_cast<std::size_t>(out));
  taps.second.resize(static_cast<std::size_t>(out));
  taps.weight.resize(static_cast<std::size_t>(out));
  for (std::int64_t i = 0; i < out; ++i) {
    const double src = std::clamp(source_coordinate(i, in, out), 0.0, static_cast<double>(in - 1));
    const std::int64_t lower = static_cast<std::int64_t>(std::floor(src));
    taps.first[i] = lower;
    taps.second[i] = std::min(lower + 1, in - 1);
    taps.weight[i] = static_cast<float>(src - static_cast<double>(lower));
  }
  return taps;
}

}  // namespace

Tensor resample_linear(const Tensor& volume, const Triple& new_size) {
  check_volume(volume, new_size, "linear resampling");
  if (volume.dtype() != DType::f32) {
    throw Error("linear resampling", std::string("expects float32, got ") + dtype_name(volume.dtype()));
  }
  const std::int64_t in_h = volume.dim(1), in_w = volume.dim(2);
  const std::int64_t channels = volume.rank() == 4 ? volume.dim(3) : 1;
  const LinearTaps tz = linear_taps(volume.dim(0), new_size[0]);
  const LinearTaps ty = linear_taps(in_h, new_size[1]);
  const LinearTaps tx = linear_taps(in_w, new_size[2]);
  Tensor out = Tensor::empty(resampled_shape(volume, new_size));
  const float* in = volume.data<float>();
  float* result = out.data<float>();
  const std::int64_t out_h = new_size[1], out_w = new_size[2];
  parallel_for(new_size[0] * out_h, 4, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t row = begin; row < end; ++row) {
      const std::int64_t z = row / out_h, y = row % out_h;
      const float wz = tz.weight[z], wy = ty.weight[y];
      // The four input rows around this output row, with their bilinear weights in (d, h).
      const float* rows[4] = {in + (tz.first[z] * in_h + ty.first[y]) * in_w * channels,
                              in + (tz.first[z] * in_h + ty.second[y]) * in_w * channels,
                              in + (tz.second[z] * in_h + ty.first[y]) * in_w * channels,
                              in + (tz.second[z] * in_h + ty.second[y]) * in_w * channels};
      const float row_weight[4] = {(1 - wz) * (1 - wy), (1 - wz) * wy, wz * (1 - wy), wz * wy};
      float* dst = result + row * out_w * channels;
      for (std::int64_t x = 0; x < out_w; ++x) {
        const std::int64_t x0 = tx.first[x] * channels, x1 = tx.second[x] * channels;
        const float wx = tx.weight[x];
        for (std::int64_t c = 0; c < channels; ++c) {
          float value = 0;
          for (int r = 0; r < 4; ++r)
            value += row_weight[r] * ((1 - wx) * rows[r][x0 + c] + wx * rows[r][x1 + c]);
          dst[x * channels + c] = value;
        }
      }
    }
  });
  return out;
}

Tensor resample_nearest_labels(const Tensor& labels, const Triple& new_size) {
  check_volume(labels, new_size, "nearest resampling");
  const Triple in_size = {labels.dim(0), labels.dim(1), labels.dim(2)};
  std::array<std::vector<std::int64_t>, 3> source;
  for (int a = 0; a < 3; ++a) {
    source[a].resize(static_cast<std::size_t>(new_size[a]));
    for (std::int64_t i = 0; i < new_size[a]; ++i) {
      // The input voxel that contains the output voxel's centre.
      const double src =
          (static_cast<double>(i) + 0.5) * static_cast<double>(in_size[a]) / static_cast<double>(new_size[a]);
      source[a][i] = std::min(static_cast<std::int64_t>(std::floor(src)), in_size[a] - 1);
    }
  }
  const std::size_t voxel_bytes =
      static_cast<std::size_t>(labels.rank() == 4 ? labels.dim(3) : 1) * dtype_size(labels.dtype());
  Tensor out = Tensor::empty(resampled_shape(labels, new_size), labels.dtype());
  const auto* in = static_cast<const std::uint8_t*>(labels.raw_data());
  auto* result = static_cast<std::uint8_t*>(out.raw_data());
  parallel_for(new_size[0] * new_size[1], 4, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t row = begin; row < end; ++row) {
      const std::int64_t z = row / new_size[1], y = row % new_size[1];
      const std::uint8_t* src = in + (source[0][z] * in_size[1] + source[1][y]) * in_size[2] * voxel_bytes;
      std::uint8_t* dst = result + row * new_size[2] * voxel_bytes;
      for (std::int64_t x = 0; x < new_size[2]; ++x) {
        std::memcpy(dst + x * voxel_bytes, src + source[2][x] * voxel_bytes, voxel_bytes);
      }
    }
  });
  return out;
}

Triple resampled_size(const Triple& size, const std::array<double, 3>& spacing_in,
                      const std::array<double, 3>& spacing_out) {
  Triple result;
  for (int a = 0; a < 3; ++a) {
    if (size[a] < 1 || !(spacing_in[a] > 0) || !(spacing_out[a] > 0) || !std::isfinite(spacing_in[a]) ||
        !std::isfinite(spacing_out[a])) {
      throw Error("resampling", "invalid size " + triple_string(size) + " or spacing (" +
                                    std::to_string(spacing_in[a]) + " to " + std::to_string(spacing_out[a]) +
                                    ") on axis " + std::to_string(a));
    }
    // Same operation order as nnU-Net: spacing ratio first, then the size.
    const double scaled = spacing_in[a] / spacing_out[a] * static_cast<double>(size[a]);
    result[a] = std::max<std::int64_t>(1, static_cast<std::int64_t>(std::nearbyint(scaled)));
  }
  return result;
}

}  // namespace voxmamba::pipeline
