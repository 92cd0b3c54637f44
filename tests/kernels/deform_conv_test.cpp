// The deformable depthwise conv against the plain depthwise conv (network.md, D-LKA): zero
// offsets give the plain conv; an integer offset shared by all taps gives the plain conv
// read at the shifted voxel, with zeros outside the volume.
#include <algorithm>
#include <array>
#include <cmath>

#include "kernels/backend.h"
#include "kernels/ops.h"
#include "kernels/reference/reference_ops.h"
#include "tests/cuda_test_util.h"
#include "tests/test_util.h"

namespace voxmamba::kernels {
namespace {

using voxmamba::testing::close;
using voxmamba::testing::random_tensor;

struct DeformShape {
  Shape x;
  int kernel, dilation;
};

class DeformConvTest : public ::testing::TestWithParam<DeformShape> {};

Tensor offsets_filled(const Shape& x_shape, int kernel, std::array<float, 3> shift) {
  const std::int64_t taps = static_cast<std::int64_t>(kernel) * kernel * kernel;
  Tensor offsets = Tensor::empty({x_shape[0], x_shape[1], x_shape[2], x_shape[3], 3 * taps});
  for (std::int64_t i = 0; i < offsets.numel(); ++i) offsets.data<float>()[i] = shift[i % 3];
  return offsets;
}

TEST_P(DeformConvTest, ZeroOffsetsEqualThePlainDepthwiseConv) {
  const DeformShape s = GetParam();
  const std::int64_t C = s.x[4], taps = static_cast<std::int64_t>(s.kernel) * s.kernel * s.kernel;
  const Tensor x = random_tensor(s.x, 1), w = random_tensor({taps, C}, 2), b = random_tensor({C}, 3);
  const ConvParams plain{s.kernel, 1, s.dilation * (s.kernel - 1) / 2, s.dilation, static_cast<int>(C)};
  const Tensor expected = reference::conv3d(x, w.reshape({taps, 1, C}), b, plain);
  const Tensor zero = offsets_filled(s.x, s.kernel, {0, 0, 0});
  EXPECT_TRUE(close(deform_dwconv3d(x, zero, w, b, s.kernel, s.dilation), expected, 1e-5));
  EXPECT_TRUE(close(reference::deform_dwconv3d(x, zero, w, b, s.kernel, s.dilation), expected, 1e-5));
}

TEST_P(DeformConvTest, IntegerOffsetsEqualTheShiftedConv) {
  const DeformShape s = GetParam();
  const std::int64_t C = s.x[4], taps = static_cast<std::int64_t>(s.kernel) * s.kernel * s.kernel;
  const Tensor x = random_tensor(s.x, 4), w = random_tensor({taps, C}, 5), b = random_tensor({C}, 6);
  for (const std::array<float, 3>& shift : {std::array<float, 3>{1, 0, -1}, std::array<float, 3>{-1, 1, 1}}) {
    // The plain conv with one extra voxel of padding is defined one voxel beyond the volume
    // on every side: big[q + 1] is the plain conv centred at q.
    const ConvParams padded{s.kernel, 1, s.dilation * (s.kernel - 1) / 2 + 1, s.dilation, static_cast<int>(C)};
    const Tensor big = reference::conv3d(x, w.reshape({taps, 1, C}), b, padded);
    Tensor expected = Tensor::empty(s.x);
    const std::int64_t D = s.x[1], H = s.x[2], W = s.x[3];
    for (std::int64_t n = 0; n < s.x[0]; ++n)
      for (std::int64_t d = 0; d < D; ++d)
        for (std::int64_t h = 0; h < H; ++h)
          for (std::int64_t v = 0; v < W; ++v)
            for (std::int64_t c = 0; c < C; ++c) {
              const std::int64_t bd = d + static_cast<std::int64_t>(shift[0]) + 1,
                                 bh = h + static_cast<std::int64_t>(shift[1]) + 1,
                                 bw = v + static_cast<std::int64_t>(shift[2]) + 1;
              expected.data<float>()[(((n * D + d) * H + h) * W + v) * C + c] =
                  big.data<float>()[(((n * (D + 2) + bd) * (H + 2) + bh) * (W + 2) + bw) * C + c];
            }
    const Tensor offsets = offsets_filled(s.x, s.kernel, shift);
    EXPECT_TRUE(close(deform_dwconv3d(x, offsets, w, b, s.kernel, s.dilation), expected, 1e-5));
    EXPECT_TRUE(close(reference::deform_dwconv3d(x, offsets, w, b, s.kernel, s.dilation), expected, 1e-5));
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, DeformConvTest,
                         ::testing::Values(DeformShape{{1, 5, 6, 7, 3}, 3, 1}, DeformShape{{2, 6, 5, 4, 2}, 5, 1},
                                           DeformShape{{1, 8, 7, 9, 2}, 7, 3}, DeformShape{{1, 1, 1, 4, 3}, 5, 1}));

TEST(DeformConv, FractionalOffsetInterpolatesBetweenNeighbours) {
  // A 1x1x1 kernel moved half a voxel along w reads the mean of two neighbours, and a
  // quarter voxel past the last voxel reads 3/4 of it (the outside reads zero).
  Tensor x = Tensor::empty({1, 1, 1, 3, 1});
  x.data<float>()[0] = 2, x.data<float>()[1] = 4, x.data<float>()[2] = 8;
  Tensor offsets = Tensor::zeros({1, 1, 1, 3, 3});
  offsets.data<float>()[2] = 0.5f;   // voxel 0: w + 0.5
  offsets.data<float>()[8] = 0.25f;  // voxel 2: w + 0.25, past the end
  const Tensor y = deform_dwconv3d(x, offsets, Tensor::full({1, 1}, 1.0f), Tensor::zeros({1}), 1, 1);
  EXPECT_FLOAT_EQ(y.data<float>()[0], 3.0f);
  EXPECT_FLOAT_EQ(y.data<float>()[1], 4.0f);
  EXPECT_FLOAT_EQ(y.data<float>()[2], 6.0f);
}

TEST(DeformConv, OffsetBiasEqualsAddingItToEveryVoxelsOffsets) {
  // ops.h: the offset head's bias, passed separately, shifts every voxel's offsets.
  const Shape shape{1, 4, 5, 6, 8};
  const int kernel = 3, taps = 27;
  const Tensor x = random_tensor(shape, 1);
  const Tensor offsets = random_tensor({1, 4, 5, 6, 3 * taps}, 2, -1.5f, 1.5f);
  const Tensor shift = random_tensor({3 * taps}, 3, -1.0f, 1.0f);
  const Tensor w = random_tensor({taps, 8}, 4), b = random_tensor({8}, 5);
  Tensor shifted = offsets.clone();
  for (std::int64_t i = 0; i < shifted.numel(); ++i) shifted.data<float>()[i] += shift.data<float>()[i % (3 * taps)];
  const Tensor expected = reference::deform_dwconv3d(x, shifted, w, b, kernel, 2);
  EXPECT_TRUE(close(reference::deform_dwconv3d(x, offsets, w, b, kernel, 2, shift), expected, 1e-6));
  EXPECT_TRUE(close(deform_dwconv3d(x, offsets, w, b, kernel, 2, shift), expected, 1e-5));
  EXPECT_THROW(deform_dwconv3d(x, offsets, w, b, kernel, 2, random_tensor({3 * taps - 1}, 6)), Error);
}

TEST(DeformConv, PaddedOffsetRowsIgnoreTheirExtraChannelsAndShortRowsAreRefused) {
  // ops.h: offsets rows may be longer than 3 K^3 (the model pads them to 8-channel
  // multiples); the extra channels, here wild values, must not matter.
  const Shape shape{1, 3, 4, 5, 8};
  const int kernel = 3, taps = 27;
  const Tensor x = random_tensor(shape, 1);
  const Tensor offsets = random_tensor({1, 3, 4, 5, 3 * taps}, 2, -1.5f, 1.5f);
  const Tensor w = random_tensor({taps, 8}, 4), b = random_tensor({8}, 5);
  Tensor padded = Tensor::full({1, 3, 4, 5, 3 * taps + 3}, 1e6f);
  for (std::int64_t v = 0; v < 3 * 4 * 5; ++v) {
    std::copy_n(offsets.data<float>() + v * 3 * taps, 3 * taps, padded.data<float>() + v * (3 * taps + 3));
  }
  const Tensor expected = reference::deform_dwconv3d(x, offsets, w, b, kernel, 1);
  EXPECT_TRUE(close(reference::deform_dwconv3d(x, padded, w, b, kernel, 1), expected, 1e-6));
  EXPECT_TRUE(close(deform_dwconv3d(x, padded, w, b, kernel, 1), expected, 1e-5));
  const Tensor short_rows = random_tensor({1, 3, 4, 5, 3 * taps - 1}, 6);
  try {
    deform_dwconv3d(x, short_rows, w, b, kernel, 1);
    ADD_FAILURE() << "offsets with fewer than 3 K^3 channels were accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("offsets must have at least 3*K^3 = 81 channels"), std::string::npos)
        << e.what();
  }
}

// Channels [first, last) of a float32 CPU tensor [..., C].
Tensor channels(const Tensor& t, std::int64_t first, std::int64_t last) {
  const std::int64_t C = t.dim(t.rank() - 1), rows = t.numel() / C;
  Shape shape = t.shape();
  shape.back() = last - first;
  Tensor out = Tensor::empty(shape);
  for (std::int64_t r = 0; r < rows; ++r) {
    std::copy_n(t.data<float>() + r * C + first, last - first, out.data<float>() + r * (last - first));
  }
  return out;
}

TEST(DeformConvCuda, Bf16ValuesBeyondFloat16RangeMatchTheReference) {
  // On the GPU, bfloat16 data is sampled from a float16 copy scaled by a power of two into
  // float16's range (half_sample_copy.cuh): values of 10^6, which float16 cannot hold, must
  // give the reference's result, and channels of ordinary size beside them must keep their
  // precision. Unscaled, the large channels would read infinity.
  VOXMAMBA_REQUIRE_CUDA_DEVICE();
  const Shape shape{1, 9, 10, 11, 48};
  const int kernel = 3, dilation = 2, taps = 27;
  Tensor x = random_tensor(shape, 1);
  for (std::int64_t i = 0; i < x.numel(); ++i) {
    if (i % 48 < 8) x.data<float>()[i] *= 1e6f;
  }
  const auto bf16_values = [](const Tensor& t) {
    return reference::cast(reference::cast(t, DType::bf16), DType::f32);
  };
  x = bf16_values(x);
  const Tensor offsets = bf16_values(random_tensor({1, 9, 10, 11, 3 * taps}, 2, -1.5f, 1.5f));
  const Tensor w = random_tensor({taps, 48}, 3), b = random_tensor({48}, 4);
  const Tensor expected = reference::deform_dwconv3d(x, offsets, w, b, kernel, dilation);
  const Device gpu = Device::cuda(0);
  const Tensor actual = cast(deform_dwconv3d(cast(x.to(gpu), DType::bf16), cast(offsets.to(gpu), DType::bf16),
                                             w.to(gpu), b.to(gpu), kernel, dilation),
                             DType::f32)
                            .to(Device::cpu());
  // Each set of channels to the bfloat16 tolerance of ops_test, relative to its own largest value.
  EXPECT_TRUE(close(channels(actual, 0, 8), channels(expected, 0, 8), 1e-2));
  EXPECT_TRUE(close(channels(actual, 8, 48), channels(expected, 8, 48), 1e-2));
  float largest = 0.0f;
  for (std::int64_t i = 0; i < expected.numel(); i += 48)
    largest = std::max(largest, std::fabs(expected.data<float>()[i]));
  EXPECT_GT(largest, 65504.0f) << "channel 0 of the output must lie beyond float16's range";
}

// The model's loader gives 16-bit deformable convs their tap weights in float16 (ops.h): every
// GPU path must read them as the float32 weights of the same values, bit for bit. 48 channels
// take the half2 paths (float16 data, and bfloat16 through its scaled copy); 12 channels and
// an odd row (bfloat16, no 16-byte vectors) take the float paths.
TEST(DeformConvCuda, Float16WeightsGiveTheBytesOfTheirFloat32Values) {
  VOXMAMBA_REQUIRE_CUDA_DEVICE();
  const Device gpu = Device::cuda(0);
  const int kernel = 5, dilation = 2, taps = 125;
  for (const DType type : {DType::f16, DType::bf16}) {
    for (const std::int64_t C : {48, 12, 3}) {
      const Shape shape{1, 6, 7, 9, C};
      const Tensor x = cast(random_tensor(shape, 11).to(gpu), type);
      const Tensor offsets = cast(random_tensor({1, 6, 7, 9, 3 * taps}, 12, -1.5f, 1.5f).to(gpu), type);
      const Tensor w16 = cast(random_tensor({taps, C}, 13).to(gpu), DType::f16);
      const Tensor b = random_tensor({C}, 14).to(gpu);
      const Tensor from_half = deform_dwconv3d(x, offsets, w16, b, kernel, dilation);
      const Tensor from_float = deform_dwconv3d(x, offsets, cast(w16, DType::f32), b, kernel, dilation);
      EXPECT_TRUE(testing::bit_identical(from_half, from_float))
          << dtype_name(type) << ", " << C << " channels";
    }
  }
  // float16 weights with float32 data are refused, naming both types.
  const Tensor x = random_tensor({1, 4, 4, 4, 8}, 15).to(gpu);
  const Tensor offsets = random_tensor({1, 4, 4, 4, 3 * taps}, 16).to(gpu);
  const Tensor w16 = cast(random_tensor({taps, 8}, 17).to(gpu), DType::f16),
               b = random_tensor({8}, 18).to(gpu);
  EXPECT_NE(testing::error_of([&] {
              deform_dwconv3d(x, offsets, w16, b, kernel, dilation);
            }).find("got float16 with float32 input"),
            std::string::npos);
}

}  // namespace
}  // namespace voxmamba::kernels
