#include "pipeline/sliding_window.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <set>
#include <vector>

#include "core/error.h"
#include "tests/test_util.h"

namespace voxmamba::pipeline {
namespace {

using Triple = std::array<std::int64_t, 3>;

TEST(WindowStarts, KnownCases) {
  EXPECT_EQ(window_starts(100, 64, 0.5), (std::vector<std::int64_t>{0, 18, 36}));
  EXPECT_EQ(window_starts(64, 64, 0.5), (std::vector<std::int64_t>{0}));
  EXPECT_EQ(window_starts(96, 64, 0.5), (std::vector<std::int64_t>{0, 32}));
  EXPECT_EQ(window_starts(128, 64, 1.0), (std::vector<std::int64_t>{0, 64}));
  EXPECT_EQ(window_starts(130, 64, 1.0), (std::vector<std::int64_t>{0, 33, 66}));
  // TotalSegmentator's fast setting: step 0.8 of 128 = 102.4; ceil(72 / 102.4) + 1 = 2 tiles.
  EXPECT_EQ(window_starts(200, 128, 0.8), (std::vector<std::int64_t>{0, 72}));
}

TEST(WindowStarts, SpreadsEvenlyToTheEnd) {
  // ceil(65 / 32) + 1 = 4 tiles, 65 / 3 = 21.67 apart: 0, 21.67, 43.33, 65 rounded.
  const std::vector<std::int64_t> starts = window_starts(129, 64, 0.5);
  ASSERT_EQ(starts.size(), 4u);
  EXPECT_EQ(starts, (std::vector<std::int64_t>{0, 22, 43, 65}));
  for (std::size_t i = 1; i < starts.size(); ++i) {
    EXPECT_GE(starts[i] - starts[i - 1], 21);
    EXPECT_LE(starts[i] - starts[i - 1], 22);
  }
}

TEST(WindowStarts, RoundsHalfToEvenAsNumpy) {
  // Target step 2.5, ceil(5 / 2.5) + 1 = 3 tiles 2.5 apart: np.round gives 0, 2, 5.
  EXPECT_EQ(window_starts(10, 5, 0.5), (std::vector<std::int64_t>{0, 2, 5}));
}

TEST(WindowStarts, RejectsImagesSmallerThanThePatchAndBadSteps) {
  EXPECT_THROW(window_starts(63, 64, 0.5), Error);
  EXPECT_THROW(window_starts(100, 64, 0.0), Error);
  EXPECT_THROW(window_starts(100, 64, 1.5), Error);
  EXPECT_THROW(window_starts(100, 0, 0.5), Error);
  EXPECT_THROW(sliding_windows({64, 64, 64}, {32, 32, 32}, 1.0), Error);
  EXPECT_THROW(sliding_windows({64, 64, 64}, {32, 32, 32}, -0.1), Error);
}

TEST(SlidingWindows, CoverEveryVoxelForRandomSizes) {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 40; ++trial) {
    Triple patch, image;
    for (int a = 0; a < 3; ++a) {
      patch[a] = std::uniform_int_distribution<std::int64_t>(1, 12)(rng);
      image[a] = patch[a] + std::uniform_int_distribution<std::int64_t>(0, 30)(rng);
    }
    const double overlap = std::uniform_real_distribution<double>(0.0, 0.9)(rng);
    const std::vector<Window> windows = sliding_windows(image, patch, overlap);
    std::vector<int> hits(static_cast<std::size_t>(image[0] * image[1] * image[2]), 0);
    for (const Window& w : windows) {
      ASSERT_EQ(w.size, patch);
      for (int a = 0; a < 3; ++a) {
        ASSERT_GE(w.begin[a], 0);
        ASSERT_LE(w.begin[a] + patch[a], image[a]);
      }
      for (std::int64_t z = 0; z < patch[0]; ++z)
        for (std::int64_t y = 0; y < patch[1]; ++y)
          for (std::int64_t x = 0; x < patch[2]; ++x)
            hits[((w.begin[0] + z) * image[1] + w.begin[1] + y) * image[2] + w.begin[2] + x]++;
    }
    for (std::size_t i = 0; i < hits.size(); ++i)
      ASSERT_GE(hits[i], 1) << "trial " << trial << " voxel " << i;
    // No two tiles further apart than the target step.
    for (int a = 0; a < 3; ++a) {
      const std::vector<std::int64_t> s = window_starts(image[a], patch[a], 1.0 - overlap);
      for (std::size_t i = 1; i < s.size(); ++i)
        ASSERT_LE(s[i] - s[i - 1], std::ceil(patch[a] * (1.0 - overlap)));
    }
  }
}

TEST(SlidingWindows, OrderIsDepthSlowestWidthFastest) {
  const std::vector<Window> windows = sliding_windows({6, 4, 6}, {4, 4, 4}, 0.5);
  ASSERT_EQ(windows.size(), 4u);
  EXPECT_EQ(windows[0].begin, (Triple{0, 0, 0}));
  EXPECT_EQ(windows[1].begin, (Triple{0, 0, 2}));
  EXPECT_EQ(windows[2].begin, (Triple{2, 0, 0}));
  EXPECT_EQ(windows[3].begin, (Triple{2, 0, 2}));
}

float at(const Tensor& map, const Triple& patch, std::int64_t z, std::int64_t y, std::int64_t x) {
  return map.data<float>()[(z * patch[1] + y) * patch[2] + x];
}

TEST(GaussianImportanceMap, MaxOneAtTheCentreSymmetricNoZerosSigmaMatches) {
  const Triple patch = {16, 20, 9};  // sigmas 2, 2.5, 1.125; centres 8, 10, 4
  const Tensor map = gaussian_importance_map(patch);
  ASSERT_EQ(map.shape(), (Shape{16, 20, 9}));
  float max_value = 0, min_value = 2;
  Triple argmax{};
  for (std::int64_t z = 0; z < 16; ++z)
    for (std::int64_t y = 0; y < 20; ++y)
      for (std::int64_t x = 0; x < 9; ++x) {
        const float v = at(map, patch, z, y, x);
        if (v > max_value) {
          max_value = v;
          argmax = {z, y, x};
        }
        min_value = std::min(min_value, v);
      }
  EXPECT_EQ(max_value, 1.0f);
  EXPECT_EQ(argmax, (Triple{8, 10, 4}));
  EXPECT_GT(min_value, 0.0f);
  // One sigma from the centre the Gaussian is exp(-1/2), on each axis.
  const float one_sigma = std::exp(-0.5f);
  EXPECT_NEAR(at(map, patch, 10, 10, 4), one_sigma, 1e-6);
  EXPECT_NEAR(at(map, patch, 6, 10, 4), one_sigma, 1e-6);
  EXPECT_NEAR(at(map, patch, 8, 10 + 2, 4), std::exp(-0.5f * (2.0f / 2.5f) * (2.0f / 2.5f)), 1e-6);
  EXPECT_NEAR(at(map, patch, 8, 10, 4 + 1), std::exp(-0.5f / (1.125f * 1.125f)), 1e-6);
  // Separable: the corner is the product of the axes' profiles.
  const float corner = at(map, patch, 0, 10, 4) * at(map, patch, 8, 0, 4) * at(map, patch, 8, 10, 0);
  EXPECT_NEAR(at(map, patch, 0, 0, 0), corner, 1e-6 * corner);
  // Symmetric about the centre voxel; the odd axis is symmetric end to end.
  for (std::int64_t k = 1; k <= 7; ++k) {
    EXPECT_EQ(at(map, patch, 8 + k, 3, 2), at(map, patch, 8 - k, 3, 2));
    EXPECT_EQ(at(map, patch, 5, 10 + k, 1), at(map, patch, 5, 10 - k, 1));
  }
  for (std::int64_t x = 0; x < 9; ++x) EXPECT_EQ(at(map, patch, 3, 4, x), at(map, patch, 3, 4, 8 - x));
}

TEST(GaussianImportanceMap, TruncatedTailTakesTheSmallestNonZeroValue) {
  // sigma = 33/32, scipy's radius int(4 * sigma + 0.5) = 4: beyond 4 voxels from the centre
  // (16) the filtered delta is exactly 0, which nnU-Net replaces by the smallest value left.
  const Triple patch = {1, 1, 33};
  const Tensor map = gaussian_importance_map(patch, 1.0 / 32);
  const float* v = map.data<float>();
  const double sigma = 33.0 / 32;
  const float edge = static_cast<float>(std::exp(-0.5 * 16 / (sigma * sigma)));
  EXPECT_EQ(v[16], 1.0f);
  EXPECT_FLOAT_EQ(v[20], edge);
  EXPECT_FLOAT_EQ(v[12], edge);
  for (int x : {0, 5, 11, 21, 32}) EXPECT_EQ(v[x], v[20]) << x;
  EXPECT_GT(v[19], v[20]);
}

TEST(SlidingWindowAccumulator, BlendsTwoWindowsAsComputedByHand) {
  // Image [1, 1, 6], patch [1, 1, 4]: tiles at w = 0 and w = 2 overlap at w = 2, 3.
  const std::vector<Window> windows = sliding_windows({1, 1, 6}, {1, 1, 4}, 0.5);
  ASSERT_EQ(windows.size(), 2u);
  ASSERT_EQ(windows[0].begin[2], 0);
  ASSERT_EQ(windows[1].begin[2], 2);
  Tensor importance = Tensor::empty({1, 1, 4});
  const float weights[4] = {1, 2, 4, 3};  // asymmetric, so an off-by-one shows
  for (int i = 0; i < 4; ++i) importance.data<float>()[i] = weights[i];
  // Constant predictions over two classes: p1 = (0.9, 0.1), p2 = (0.2, 0.8).
  Tensor p1 = Tensor::empty({1, 1, 4, 2}), p2 = Tensor::empty({1, 1, 4, 2});
  for (int i = 0; i < 4; ++i) {
    p1.data<float>()[2 * i] = 0.9f, p1.data<float>()[2 * i + 1] = 0.1f;
    p2.data<float>()[2 * i] = 0.2f, p2.data<float>()[2 * i + 1] = 0.8f;
  }
  SlidingWindowAccumulator accumulator({1, 1, 6}, 2);
  accumulator.add(windows[0], p1, importance);
  accumulator.add(windows[1], p2, importance);
  const Tensor blended = accumulator.result();
  ASSERT_EQ(blended.shape(), (Shape{1, 1, 6, 2}));
  // w=0,1: only tile 1; w=2: (4*p1 + 1*p2)/5; w=3: (3*p1 + 2*p2)/5; w=4,5: only tile 2.
  const float expected[6][2] = {{0.9f, 0.1f},   {0.9f, 0.1f}, {0.76f, 0.24f},
                                {0.62f, 0.38f}, {0.2f, 0.8f}, {0.2f, 0.8f}};
  for (int w = 0; w < 6; ++w) {
    for (int c = 0; c < 2; ++c)
      EXPECT_NEAR(blended.data<float>()[2 * w + c], expected[w][c], 1e-6) << w << " " << c;
  }
}

TEST(SlidingWindowAccumulator, NamesTheFirstUncoveredVoxel) {
  SlidingWindowAccumulator accumulator({1, 1, 6}, 1);
  accumulator.add({{0, 0, 0}, {1, 1, 4}}, Tensor::full({1, 1, 4, 1}, 0.5f), Tensor::full({1, 1, 4}, 1.0f));
  try {
    accumulator.result();
    FAIL() << "expected an error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("(0, 0, 4)"), std::string::npos) << error.what();
  }
}

TEST(SlidingWindowAccumulator, RejectsMismatchedInputs) {
  SlidingWindowAccumulator accumulator({4, 4, 4}, 2);
  const Tensor importance = Tensor::full({2, 2, 2}, 1.0f);
  EXPECT_THROW(accumulator.add({{3, 0, 0}, {2, 2, 2}}, Tensor::full({2, 2, 2, 2}, 0.5f), importance), Error);
  EXPECT_THROW(accumulator.add({{0, 0, 0}, {2, 2, 2}}, Tensor::full({2, 2, 2, 3}, 0.5f), importance), Error);
  EXPECT_THROW(
      accumulator.add({{0, 0, 0}, {2, 2, 2}}, Tensor::full({2, 2, 2, 2}, 0.5f), Tensor::full({2, 2, 3}, 1.f)),
      Error);
  EXPECT_THROW(
      accumulator.add({{0, 0, 0}, {2, 2, 2}}, Tensor::full({2, 2, 2, 2}, 0.5f), Tensor::zeros({2, 2, 2})),
      Error);
}

TEST(SlidingWindowAccumulator, AGaussianBlendOfEqualPredictionsIsThatPrediction) {
  std::mt19937_64 rng(3);
  for (int trial = 0; trial < 5; ++trial) {
    Triple image, patch;
    for (int a = 0; a < 3; ++a) {
      patch[a] = std::uniform_int_distribution<std::int64_t>(2, 8)(rng);
      image[a] = patch[a] + std::uniform_int_distribution<std::int64_t>(0, 12)(rng);
    }
    // The same per-voxel field cut into tiles: blending must give the field back.
    const Tensor field = testing::random_tensor({image[0], image[1], image[2], 3}, 100 + trial, 0, 1);
    const Tensor importance = gaussian_importance_map(patch);
    SlidingWindowAccumulator accumulator(image, 3);
    for (const Window& w : sliding_windows(image, patch, 0.5)) {
      const Tensor tile = crop(field, w.begin, w.size);
      accumulator.add(w, tile.reshape({1, patch[0], patch[1], patch[2], 3}), importance);
    }
    EXPECT_TRUE(testing::close(accumulator.result(), field, 1e-5)) << "trial " << trial;
  }
}

TEST(RoundUpToMultiple, Cases) {
  EXPECT_EQ(round_up_to_multiple(0, 16), 0);
  EXPECT_EQ(round_up_to_multiple(1, 16), 16);
  EXPECT_EQ(round_up_to_multiple(16, 16), 16);
  EXPECT_EQ(round_up_to_multiple(17, 16), 32);
  EXPECT_THROW(round_up_to_multiple(5, 0), Error);
}

TEST(PadAndCrop, PadsSymmetricallyWithZerosAndCropUndoesIt) {
  const Tensor volume = testing::random_tensor({3, 5, 2, 2}, 11, 1, 2);  // no zeros inside
  Triple offset{};
  const Tensor padded = pad_to_at_least(volume, {4, 8, 1}, &offset);
  ASSERT_EQ(padded.shape(), (Shape{4, 8, 2, 2}));
  EXPECT_EQ(offset, (Triple{0, 1, 0}));  // below: difference // 2, above: the rest
  std::int64_t zeros = 0;
  for (std::int64_t i = 0; i < padded.numel(); ++i) zeros += padded.data<float>()[i] == 0.0f;
  EXPECT_EQ(zeros, padded.numel() - volume.numel());
  // d: 1 padded row after (3 -> 4); h: rows 0 and 6, 7 are padding.
  for (std::int64_t x = 0; x < 2 * 2; ++x) {
    EXPECT_EQ(padded.data<float>()[(3 * 8 + 2) * 4 + x], 0.0f);
    EXPECT_EQ(padded.data<float>()[(0 * 8 + 0) * 4 + x], 0.0f);
    EXPECT_EQ(padded.data<float>()[(0 * 8 + 6) * 4 + x], 0.0f);
  }
  EXPECT_TRUE(testing::close(crop(padded, offset, {3, 5, 2}), volume, 0));
  EXPECT_THROW(crop(padded, {1, 0, 0}, {4, 1, 1}), Error);
}

TEST(PadAndCrop, WorksOnIntegerLabelMaps) {
  Tensor labels = Tensor::empty({2, 2, 2}, DType::i32);
  for (int i = 0; i < 8; ++i) labels.data<std::int32_t>()[i] = i + 1;
  Triple offset{};
  const Tensor padded = pad_to_at_least(labels, {2, 5, 2}, &offset);
  EXPECT_EQ(offset, (Triple{0, 1, 0}));
  EXPECT_EQ(padded.data<std::int32_t>()[(0 * 5 + 1) * 2 + 1], 2);
  EXPECT_EQ(padded.data<std::int32_t>()[(1 * 5 + 4) * 2 + 1], 0);
  const Tensor back = crop(padded, offset, {2, 2, 2});
  for (int i = 0; i < 8; ++i) EXPECT_EQ(back.data<std::int32_t>()[i], i + 1);
}

TEST(MirrorAxisMasks, NoneWithoutTtaAllEightWithIt) {
  EXPECT_EQ(mirror_axis_masks(false), (std::vector<int>{0}));
  const std::vector<int> all = mirror_axis_masks(true);
  EXPECT_EQ(std::set<int>(all.begin(), all.end()), (std::set<int>{0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(all.size(), 8u);
}

}  // namespace
}  // namespace voxmamba::pipeline
