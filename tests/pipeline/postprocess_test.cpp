#include "pipeline/postprocess.h"

#include <gtest/gtest.h>

namespace voxmamba::pipeline {
namespace {

TEST(LargestComponent, KeepsTheLargestBlobOfEachLabel) {
  Tensor labels = Tensor::zeros({4, 5, 6}, DType::i32);
  auto at = [&](int d, int h, int w) -> std::int32_t& { return labels.data<std::int32_t>()[(d * 5 + h) * 6 + w]; };
  // Label 1: a 2x2x2 cube and a lone voxel; label 2: a bar of 3 touching the cube (other label).
  for (int d = 0; d < 2; ++d)
    for (int h = 0; h < 2; ++h)
      for (int w = 0; w < 2; ++w) at(d, h, w) = 1;
  at(3, 4, 5) = 1;
  for (int w = 2; w < 5; ++w) at(0, 0, w) = 2;
  at(3, 0, 0) = 2;
  at(2, 2, 2) = 1;  // diagonal-only contact with nothing: its own component
  keep_largest_component_per_label(labels);
  EXPECT_EQ(at(1, 1, 1), 1);
  EXPECT_EQ(at(3, 4, 5), 0);
  EXPECT_EQ(at(2, 2, 2), 0);
  EXPECT_EQ(at(0, 0, 4), 2);
  EXPECT_EQ(at(3, 0, 0), 0);
  int ones = 0, twos = 0;
  for (std::int64_t i = 0; i < labels.numel(); ++i) {
    ones += labels.data<std::int32_t>()[i] == 1;
    twos += labels.data<std::int32_t>()[i] == 2;
  }
  EXPECT_EQ(ones, 8);
  EXPECT_EQ(twos, 3);
}

TEST(LargestComponent, RejectsNonLabelTensors) {
  Tensor floats = Tensor::zeros({2, 2, 2});
  EXPECT_THROW(keep_largest_component_per_label(floats), Error);
}

}  // namespace
}  // namespace voxmamba::pipeline
