#include "pipeline/intensity.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/error.h"
#include "tests/test_util.h"

namespace voxmamba::pipeline {
namespace {

using Triple = std::array<std::int64_t, 3>;

// Mean and population std of channel c over the voxels where `selected` is true.
std::pair<double, double> moments(const Tensor& t, std::int64_t c, const std::vector<bool>& selected) {
  const std::int64_t channels = t.dim(3);
  double sum = 0, count = 0;
  for (std::size_t v = 0; v < selected.size(); ++v) {
    if (selected[v]) sum += t.data<float>()[v * channels + c], count += 1;
  }
  const double mean = sum / count;
  double squares = 0;
  for (std::size_t v = 0; v < selected.size(); ++v) {
    if (selected[v]) squares += std::pow(t.data<float>()[v * channels + c] - mean, 2);
  }
  return {mean, std::sqrt(squares / count)};
}

TEST(ZScoreNonzero, MeanZeroStdOneOnTheMaskZerosOutside) {
  // A block of values around 500 inside a zero background, two channels.
  Tensor volume = Tensor::zeros({6, 7, 8, 2});
  const Tensor values = testing::random_tensor({6, 7, 8, 2}, 21, 400, 600);
  std::vector<bool> mask(6 * 7 * 8, false);
  for (std::int64_t d = 1; d < 5; ++d)
    for (std::int64_t h = 2; h < 6; ++h)
      for (std::int64_t w = 0; w < 5; ++w) {
        const std::int64_t v = (d * 7 + h) * 8 + w;
        mask[v] = true;
        for (int c = 0; c < 2; ++c) volume.data<float>()[v * 2 + c] = values.data<float>()[v * 2 + c];
      }
  const auto before = moments(volume, 1, mask);
  normalize_zscore_nonzero(volume);
  for (int c = 0; c < 2; ++c) {
    const auto [mean, std] = moments(volume, c, mask);
    EXPECT_NEAR(mean, 0.0, 1e-5);
    EXPECT_NEAR(std, 1.0, 1e-5);
  }
  for (std::size_t v = 0; v < mask.size(); ++v) {
    if (!mask[v]) {
      ASSERT_EQ(volume.data<float>()[v * 2], 0.0f) << v;
    }
  }
  // One voxel by hand: (x - mean) / std with the statistics from before.
  const std::int64_t v = (1 * 7 + 2) * 8 + 0;
  EXPECT_NEAR(volume.data<float>()[v * 2 + 1],
              (values.data<float>()[v * 2 + 1] - before.first) / before.second, 1e-4);
}

TEST(ZScoreNonzero, LargeVolumeMatchesADoubleReference) {
  // Big enough for several partial-sum blocks and threads; half the voxels are zero.
  const Shape shape = {40, 41, 42, 1};
  Tensor volume = testing::random_tensor(shape, 8, 900, 1100);
  for (std::int64_t i = 0; i < volume.numel(); i += 2) volume.data<float>()[i] = 0;
  std::vector<bool> mask(static_cast<std::size_t>(volume.numel()));
  for (std::size_t v = 0; v < mask.size(); ++v) mask[v] = volume.data<float>()[v] != 0;
  const auto [mean, std] = moments(volume, 0, mask);
  Tensor expected = volume.clone();
  for (std::size_t v = 0; v < mask.size(); ++v) {
    if (mask[v]) expected.data<float>()[v] = static_cast<float>((volume.data<float>()[v] - mean) / std);
  }
  normalize_zscore_nonzero(volume);
  EXPECT_TRUE(testing::close(volume, expected, 1e-5));
}

TEST(ZScoreNonzero, TheMaskIsSharedByAllChannels) {
  // Voxel 0 is non-zero only in channel 0; it is in the mask, so channel 1's zero there counts.
  Tensor volume = Tensor::zeros({1, 1, 4, 2});
  float* x = volume.data<float>();
  x[0] = 5, x[1] = 0;  // voxel 0
  x[2] = 1, x[3] = 2;  // voxel 1
  x[4] = 3, x[5] = 4;  // voxel 2; voxel 3 stays zero: outside
  normalize_zscore_nonzero(volume);
  // Channel 1 over the mask: {0, 2, 4}, mean 2, std sqrt(8/3).
  const double std1 = std::sqrt(8.0 / 3);
  EXPECT_NEAR(x[1], -2 / std1, 1e-6);
  EXPECT_NEAR(x[3], 0, 1e-6);
  EXPECT_NEAR(x[5], 2 / std1, 1e-6);
  // Channel 0 over the mask: {5, 1, 3}, mean 3, std sqrt(8/3).
  EXPECT_NEAR(x[0], 2 / std1, 1e-6);
  EXPECT_EQ(x[6], 0.0f);
  EXPECT_EQ(x[7], 0.0f);
}

TEST(ZScoreNonzero, FewerThanTwoNonZeroVoxelsUsesTheWholeImage) {
  Tensor volume = Tensor::zeros({2, 2, 2});
  volume.data<float>()[3] = 8;  // mean 1, std sqrt(64/8 - 1) = sqrt(7)
  normalize_zscore_nonzero(volume);
  for (int i = 0; i < 8; ++i) {
    EXPECT_NEAR(volume.data<float>()[i], ((i == 3 ? 8 : 0) - 1) / std::sqrt(7.0), 1e-6) << i;
  }
  Tensor empty = Tensor::zeros({2, 2, 2, 1});
  normalize_zscore_nonzero(empty);  // std 0: divides by 1e-8, stays 0 and finite
  for (int i = 0; i < 8; ++i) EXPECT_EQ(empty.data<float>()[i], 0.0f);
}

TEST(NormalizeCt, ClipsToThePercentilesThenStandardises) {
  Tensor volume = Tensor::empty({1, 2, 3, 1});
  const float input[6] = {-1000, -100, 0, 100, 300, 3000};
  for (int i = 0; i < 6; ++i) volume.data<float>()[i] = input[i];
  normalize_ct(volume, {100, 50, -100, 300});
  // clip -> {-100, -100, 0, 100, 300, 300}; (x - 100) / 50.
  const float expected[6] = {-4, -4, -2, 0, 4, 4};
  for (int i = 0; i < 6; ++i) EXPECT_FLOAT_EQ(volume.data<float>()[i], expected[i]) << i;
}

TEST(NormalizeCt, OneChannelOfSeveralAndBadInputs) {
  Tensor volume = Tensor::full({1, 1, 2, 2}, 1000.0f);
  EXPECT_THROW(normalize_ct(volume, {0, 1, -10, 10}), Error);  // which channel?
  normalize_ct(volume, 1, {0, 2, -10, 10});
  EXPECT_FLOAT_EQ(volume.data<float>()[0], 1000.0f);
  EXPECT_FLOAT_EQ(volume.data<float>()[1], 5.0f);
  EXPECT_FLOAT_EQ(volume.data<float>()[3], 5.0f);
  EXPECT_THROW(normalize_ct(volume, 2, {0, 1, -10, 10}), Error);
  EXPECT_THROW(normalize_ct(volume, 0, {0, 1, 10, -10}), Error);  // percentiles swapped
  Tensor flat = Tensor::full({1, 1, 2}, 3.0f);
  normalize_ct(flat, {2, 0, 0, 10});  // std 0 -> 1e-8, finite
  EXPECT_FLOAT_EQ(flat.data<float>()[0], 1e8f);
}

TEST(NonzeroBoundingBox, BoxOfAKnownBlob) {
  Tensor volume = Tensor::zeros({6, 7, 8, 2});
  auto set = [&](std::int64_t d, std::int64_t h, std::int64_t w, int c) {
    volume.data<float>()[((d * 7 + h) * 8 + w) * 2 + c] = -3.0f;
  };
  set(1, 5, 3, 0);  // channel 0 only
  set(4, 2, 6, 1);  // channel 1 only
  set(2, 3, 4, 0);
  const CropBox box = nonzero_bounding_box(volume);
  EXPECT_EQ(box.begin, (Triple{1, 2, 3}));
  EXPECT_EQ(box.end, (Triple{5, 6, 7}));
  const CropBox whole = nonzero_bounding_box(Tensor::zeros({3, 4, 5}));
  EXPECT_EQ(whole.begin, (Triple{0, 0, 0}));
  EXPECT_EQ(whole.end, (Triple{3, 4, 5}));
}

TEST(CropToBox, RoundTripThroughUncrop) {
  Tensor volume = Tensor::zeros({6, 7, 8, 2});
  const Tensor values = testing::random_tensor({6, 7, 8, 2}, 4, 1, 2);
  for (std::int64_t d = 2; d < 4; ++d)
    for (std::int64_t h = 1; h < 7; ++h)
      for (std::int64_t w = 3; w < 5; ++w)
        for (int c = 0; c < 2; ++c) {
          const std::int64_t i = ((d * 7 + h) * 8 + w) * 2 + c;
          volume.data<float>()[i] = values.data<float>()[i];
        }
  const CropBox box = nonzero_bounding_box(volume);
  const Tensor cropped = crop_to_box(volume, box);
  ASSERT_EQ(cropped.shape(), (Shape{2, 6, 2, 2}));
  EXPECT_EQ(cropped.data<float>()[0], volume.data<float>()[((2 * 7 + 1) * 8 + 3) * 2]);
  EXPECT_TRUE(testing::close(uncrop(cropped, box, {6, 7, 8}, 0.0f), volume, 0));
  EXPECT_THROW(uncrop(cropped, box, {3, 7, 8}, 0.0f), Error);
  EXPECT_THROW(uncrop(cropped, {{0, 0, 0}, {2, 6, 3}}, {6, 7, 8}, 0.0f), Error);
  EXPECT_THROW(crop_to_box(volume, {{2, 2, 2}, {2, 4, 4}}), Error);
}

TEST(Uncrop, IntegerLabelMapsWithAFillValue) {
  Tensor labels = Tensor::empty({1, 2, 2}, DType::i32);
  for (int i = 0; i < 4; ++i) labels.data<std::int32_t>()[i] = i + 1;
  const Tensor full = uncrop(labels, {{1, 0, 1}, {2, 2, 3}}, {2, 3, 4}, -1.0f);
  ASSERT_EQ(full.shape(), (Shape{2, 3, 4}));
  ASSERT_EQ(full.dtype(), DType::i32);
  const std::int32_t* v = full.data<std::int32_t>();
  EXPECT_EQ(v[0], -1);
  EXPECT_EQ(v[(1 * 3 + 0) * 4 + 1], 1);
  EXPECT_EQ(v[(1 * 3 + 1) * 4 + 2], 4);
  EXPECT_EQ(v[(1 * 3 + 2) * 4 + 1], -1);
  EXPECT_THROW(uncrop(labels, {{1, 0, 1}, {2, 2, 3}}, {2, 3, 4}, 0.5f), Error);
}

}  // namespace
}  // namespace voxmamba::pipeline
