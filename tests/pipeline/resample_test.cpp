#include "pipeline/resample.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "core/error.h"
#include "tests/test_util.h"

namespace voxmamba::pipeline {
namespace {

using Triple = std::array<std::int64_t, 3>;

TEST(ResampleLinear, SameSizeIsTheIdentity) {
  const Tensor volume = testing::random_tensor({5, 6, 7, 3}, 1);
  EXPECT_TRUE(testing::close(resample_linear(volume, {5, 6, 7}), volume, 0));
}

// align_corners=False: output voxel i samples input coordinate (i + 0.5) * in / out - 0.5.
double source(std::int64_t i, std::int64_t in, std::int64_t out) { return (i + 0.5) * in / out - 0.5; }

TEST(ResampleLinear, ALinearFunctionStaysLinear) {
  // f = 1 + d + 2 h + 3 w is reproduced exactly by trilinear interpolation wherever the
  // sample point lies inside the grid; at the border the coordinate clamps to the edge.
  const Triple in = {4, 9, 10}, out = {7, 5, 23};
  Tensor volume = Tensor::empty({in[0], in[1], in[2], 2});
  for (std::int64_t d = 0; d < in[0]; ++d)
    for (std::int64_t h = 0; h < in[1]; ++h)
      for (std::int64_t w = 0; w < in[2]; ++w) {
        float* v = volume.data<float>() + ((d * in[1] + h) * in[2] + w) * 2;
        v[0] = 1.0f + d + 2.0f * h + 3.0f * w;
        v[1] = -2.0f * v[0];
      }
  const Tensor resampled = resample_linear(volume, out);
  ASSERT_EQ(resampled.shape(), (Shape{7, 5, 23, 2}));
  int interior = 0;
  for (std::int64_t d = 0; d < out[0]; ++d)
    for (std::int64_t h = 0; h < out[1]; ++h)
      for (std::int64_t w = 0; w < out[2]; ++w) {
        const double sd = source(d, in[0], out[0]), sh = source(h, in[1], out[1]),
                     sw = source(w, in[2], out[2]);
        const float* v = resampled.data<float>() + ((d * out[1] + h) * out[2] + w) * 2;
        const double clamped =
            1 + std::clamp(sd, 0.0, 3.0) + 2 * std::clamp(sh, 0.0, 8.0) + 3 * std::clamp(sw, 0.0, 9.0);
        ASSERT_NEAR(v[0], clamped, 1e-4) << d << " " << h << " " << w;
        ASSERT_NEAR(v[1], -2 * clamped, 2e-4);
        if (sd >= 0 && sd <= 3 && sh >= 0 && sh <= 8 && sw >= 0 && sw <= 9) {
          ASSERT_NEAR(v[0], 1 + sd + 2 * sh + 3 * sw, 1e-4);
          ++interior;
        }
      }
  EXPECT_GT(interior, 100);
}

TEST(ResampleLinear, HalvingAveragesPairs) {
  // Out voxel i samples 2 i + 0.5: the mean of inputs 2 i and 2 i + 1.
  const Tensor volume = testing::random_tensor({1, 1, 8}, 9);
  const Tensor half = resample_linear(volume, {1, 1, 4});
  for (int i = 0; i < 4; ++i) {
    EXPECT_NEAR(half.data<float>()[i], 0.5f * (volume.data<float>()[2 * i] + volume.data<float>()[2 * i + 1]),
                1e-6);
  }
  EXPECT_THROW(resample_linear(Tensor::zeros({2, 2, 2}, DType::i32), {3, 3, 3}), Error);
  EXPECT_THROW(resample_linear(volume, {1, 0, 4}), Error);
}

TEST(ResampleNearestLabels, KeepsTheLabelSetAndPicksTheNearestVoxel) {
  Tensor labels = Tensor::empty({4, 4, 4}, DType::i32);
  for (std::int64_t i = 0; i < 64; ++i)
    labels.data<std::int32_t>()[i] = static_cast<std::int32_t>((i * 7) % 5);
  const Triple out = {7, 9, 11};
  const Tensor resampled = resample_nearest_labels(labels, out);
  ASSERT_EQ(resampled.shape(), (Shape{7, 9, 11}));
  ASSERT_EQ(resampled.dtype(), DType::i32);
  std::set<std::int32_t> before, after;
  for (std::int64_t i = 0; i < 64; ++i) before.insert(labels.data<std::int32_t>()[i]);
  for (std::int64_t i = 0; i < resampled.numel(); ++i) after.insert(resampled.data<std::int32_t>()[i]);
  EXPECT_EQ(before, after);
  // Each output voxel copies the input voxel that contains its centre.
  for (std::int64_t d = 0; d < out[0]; ++d)
    for (std::int64_t h = 0; h < out[1]; ++h)
      for (std::int64_t w = 0; w < out[2]; ++w) {
        const std::int64_t sd = (2 * d + 1) * 4 / (2 * out[0]), sh = (2 * h + 1) * 4 / (2 * out[1]),
                           sw = (2 * w + 1) * 4 / (2 * out[2]);
        ASSERT_EQ(resampled.data<std::int32_t>()[(d * out[1] + h) * out[2] + w],
                  labels.data<std::int32_t>()[(sd * 4 + sh) * 4 + sw]);
      }
  // Doubling repeats every voxel twice; halving back gives the original.
  const Tensor doubled = resample_nearest_labels(labels, {8, 8, 8});
  const Tensor back = resample_nearest_labels(doubled, {4, 4, 4});
  for (std::int64_t i = 0; i < 64; ++i)
    ASSERT_EQ(back.data<std::int32_t>()[i], labels.data<std::int32_t>()[i]);
}

TEST(ResampledSize, RoundsLikeNnUNet) {
  EXPECT_EQ(resampled_size({100, 200, 50}, {1.0, 0.8, 3.0}, {1.0, 1.0, 1.5}), (Triple{100, 160, 100}));
  // Half to even, as Python's round: 2.5 -> 2, 3.5 -> 4.
  EXPECT_EQ(resampled_size({5, 7, 1}, {1, 1, 1}, {2, 2, 100}), (Triple{2, 4, 1}));
  EXPECT_EQ(resampled_size({3, 3, 3}, {0.7, 0.7, 0.7}, {1, 1, 1}), (Triple{2, 2, 2}));  // 2.1
  EXPECT_THROW(resampled_size({3, 3, 3}, {0, 1, 1}, {1, 1, 1}), Error);
  EXPECT_THROW(resampled_size({3, 3, 3}, {1, 1, 1}, {1, -1, 1}), Error);
}

}  // namespace
}  // namespace voxmamba::pipeline
