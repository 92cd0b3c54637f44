// The packed weight layouts of models/layers.h against their definitions, element by element,
// at sizes that leave partial tiles and at sizes large enough to be packed on several threads.
#include <gtest/gtest.h>

#include <cstdint>

#include "models/layers.h"

namespace voxmamba::models {
namespace {

// A weight whose every element differs from every other, so a misplaced one cannot match.
Tensor numbered(const Shape& shape) {
  Tensor t = Tensor::empty(shape);
  for (std::int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = static_cast<float>(i) * 0.5f - 7.0f;
  return t;
}

void expect_conv3d_packing(std::int64_t out, std::int64_t in, std::int64_t k) {
  const Tensor weight = numbered({out, in, k, k, k});
  const Tensor packed = pack_conv3d_weight(weight);
  const std::int64_t taps = k * k * k;
  ASSERT_EQ(packed.shape(), (Shape{taps, in, out}));
  const float* w = weight.data<float>();
  const float* p = packed.data<float>();
  for (std::int64_t o = 0; o < out; ++o)
    for (std::int64_t i = 0; i < in; ++i)
      for (std::int64_t t = 0; t < taps; ++t) {
        ASSERT_EQ(p[(t * in + i) * out + o], w[(o * in + i) * taps + t])
            << out << "x" << in << " k" << k << " at o " << o << " i " << i << " tap " << t;
      }
}

TEST(WeightPacking, Conv3dIsTapsByInputsByOutputs) {
  expect_conv3d_packing(1, 1, 1);
  expect_conv3d_packing(5, 3, 3);
  expect_conv3d_packing(130, 1, 5);  // depthwise: one input a group, output tiles 64, 64 and 2
  expect_conv3d_packing(48, 1, 7);
  expect_conv3d_packing(70, 67, 3);   // partial tiles of both outputs and inputs
  expect_conv3d_packing(96, 192, 3);  // base's sizes, packed on several threads
  expect_conv3d_packing(16, 3, 2);    // the downsampling convs' 2^3
}

void expect_linear_packing(const Shape& shape) {
  const Tensor weight = numbered(shape);
  const Tensor packed = pack_linear_weight(weight);
  const std::int64_t out = shape[0], in = weight.numel() / out;
  ASSERT_EQ(packed.shape(), (Shape{in, out}));
  const float* w = weight.data<float>();
  const float* p = packed.data<float>();
  for (std::int64_t o = 0; o < out; ++o)
    for (std::int64_t i = 0; i < in; ++i)
      ASSERT_EQ(p[i * out + o], w[o * in + i]) << "at o " << o << " i " << i;
}

TEST(WeightPacking, LinearIsInputsByOutputs) {
  expect_linear_packing({1, 1});
  expect_linear_packing({3, 200});
  expect_linear_packing({1029, 48});          // an offset head's map: 16 tiles and 5 rows of outputs
  expect_linear_packing({65, 130, 1, 1, 1});  // a pointwise conv's weight
  expect_linear_packing({768, 1536});         // several threads
}

void expect_conv_transpose_packing(std::int64_t in, std::int64_t out) {
  const Tensor weight = numbered({in, out, 2, 2, 2});
  const Tensor packed = pack_conv_transpose_weight(weight);
  ASSERT_EQ(packed.shape(), (Shape{in, 8, out}));
  const float* w = weight.data<float>();
  const float* p = packed.data<float>();
  for (std::int64_t i = 0; i < in; ++i)
    for (std::int64_t o = 0; o < out; ++o)
      for (std::int64_t s = 0; s < 8; ++s) {
        ASSERT_EQ(p[(i * 8 + s) * out + o], w[(i * out + o) * 8 + s])
            << "at i " << i << " o " << o << " s " << s;
      }
}

TEST(WeightPacking, ConvTransposeIsInputsBySubvoxelsByOutputs) {
  expect_conv_transpose_packing(1, 1);
  expect_conv_transpose_packing(7, 66);
  expect_conv_transpose_packing(768, 384);  // base's bottleneck: several threads
}

}  // namespace
}  // namespace voxmamba::models
