#include "pipeline/orientation.h"

#include <gtest/gtest.h>

#include <cstring>

#include "tests/test_util.h"

namespace voxmamba::pipeline {
namespace {

const std::array<double, 9> kIdentity{1, 0, 0, 0, 1, 0, 0, 0, 1};

TEST(Orientation, CodesOfDirectionMatrices) {
  EXPECT_EQ(orientation_code(kIdentity), "LPS");
  EXPECT_EQ(orientation_code({-1, 0, 0, 0, -1, 0, 0, 0, 1}), "RAS");
  // x along -z (I), y along +x (L), z along -y (A): a sagittal-style acquisition.
  EXPECT_EQ(orientation_code({0, 1, 0, 0, 0, -1, -1, 0, 0}), "ILA");
  // Slightly oblique: the closest axes win.
  EXPECT_EQ(orientation_code({0.98, 0.17, 0, -0.17, 0.98, 0, 0, 0, 1}), "LPS");
}

TEST(Orientation, MappingToTheSameCodeIsTheIdentity) {
  EXPECT_TRUE(orientation_mapping(kIdentity, "LPS").identity());
  const AxisMapping to_ras = orientation_mapping(kIdentity, "RAS");
  EXPECT_EQ(to_ras.source, (std::array<int, 3>{0, 1, 2}));
  EXPECT_EQ(to_ras.flip, (std::array<bool, 3>{true, true, false}));
  EXPECT_THROW(orientation_mapping(kIdentity, "RAR"), Error);
  EXPECT_THROW(orientation_mapping(kIdentity, "XYZ"), Error);
}

TEST(Orientation, ReorientMovesVoxelsToTheCanonicalAxesAndBack) {
  // Input voxel axes: x -> I, y -> L, z -> A (code ILA); canonical RAS.
  const std::array<double, 9> direction{0, 1, 0, 0, 0, -1, -1, 0, 0};
  const AxisMapping m = orientation_mapping(direction, "RAS");
  const Tensor volume = voxmamba::testing::random_tensor({3, 4, 5, 2}, 1);  // z=3, y=4, x=5
  const Tensor canonical = reorient(volume, m);
  // Canonical x (R) is input y flipped (L -> R); canonical y (A) is input z; canonical z (S)
  // is input x flipped (I -> S). Sizes: x = 4, y = 3, z = 5 -> tensor [5, 3, 4, 2].
  ASSERT_EQ(canonical.shape(), (Shape{5, 3, 4, 2}));
  auto at_input = [&](std::int64_t x, std::int64_t y, std::int64_t z, int c) {
    return volume.data<float>()[((z * 4 + y) * 5 + x) * 2 + c];
  };
  for (std::int64_t cz = 0; cz < 5; ++cz)
    for (std::int64_t cy = 0; cy < 3; ++cy)
      for (std::int64_t cx = 0; cx < 4; ++cx)
        for (int c = 0; c < 2; ++c) {
          ASSERT_EQ(canonical.data<float>()[((cz * 3 + cy) * 4 + cx) * 2 + c], at_input(4 - cz, 3 - cx, cy, c));
        }
  const Tensor back = reorient_back(canonical, m);
  ASSERT_EQ(back.shape(), volume.shape());
  EXPECT_EQ(std::memcmp(back.raw_data(), volume.raw_data(), volume.bytes()), 0);
  EXPECT_EQ(reorient_spacing({0.5, 1.0, 2.0}, m), (std::array<double, 3>{1.0, 2.0, 0.5}));
}

TEST(Orientation, IntegerLabelsRoundTripForEveryAxisPermutationAndFlip) {
  const int permutations[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
  Tensor labels = Tensor::empty({2, 3, 4}, DType::i32);
  for (std::int64_t i = 0; i < labels.numel(); ++i) labels.data<std::int32_t>()[i] = static_cast<std::int32_t>(i);
  for (const auto& p : permutations)
    for (int signs = 0; signs < 8; ++signs) {
      std::array<double, 9> direction{};
      for (int v = 0; v < 3; ++v) direction[p[v] * 3 + v] = (signs >> v) & 1 ? -1.0 : 1.0;
      const AxisMapping m = orientation_mapping(direction, "RAS");
      const Tensor back = reorient_back(reorient(labels, m), m);
      ASSERT_EQ(std::memcmp(back.raw_data(), labels.raw_data(), labels.bytes()), 0) << orientation_code(direction);
    }
}

}  // namespace
}  // namespace voxmamba::pipeline
