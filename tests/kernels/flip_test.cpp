// The mirroring flip (kernels::flip) on the CPU: an involution that moves whole voxels.
// OpsTest compares every backend with the reference.
#include <gtest/gtest.h>

#include "core/error.h"
#include "kernels/ops.h"
#include "tests/test_util.h"

namespace voxmamba {
namespace {

TEST(Flip, TwiceIsTheIdentity) {
  const Tensor x = testing::random_tensor({2, 3, 4, 5, 2}, 5);
  for (int mask = 0; mask < 8; ++mask) {
    EXPECT_TRUE(testing::close(kernels::flip(kernels::flip(x, mask), mask), x, 0)) << mask;
    if (mask) {
      EXPECT_FALSE(testing::close(kernels::flip(x, mask), x, 0)) << mask;
    }
  }
}

TEST(Flip, MirrorsAKnownRampAndKeepsChannelOrder) {
  // value = 100 d + 10 h + w, channel 1 = its negative.
  Tensor x = Tensor::empty({2, 3, 4, 2});
  for (int d = 0; d < 2; ++d)
    for (int h = 0; h < 3; ++h)
      for (int w = 0; w < 4; ++w) {
        float* v = x.data<float>() + ((d * 3 + h) * 4 + w) * 2;
        v[0] = 100.0f * d + 10.0f * h + w;
        v[1] = -v[0];
      }
  for (int mask = 0; mask < 8; ++mask) {
    const Tensor y = kernels::flip(x, mask);
    for (int d = 0; d < 2; ++d)
      for (int h = 0; h < 3; ++h)
        for (int w = 0; w < 4; ++w) {
          const int sd = mask & 1 ? 1 - d : d, sh = mask & 2 ? 2 - h : h, sw = mask & 4 ? 3 - w : w;
          const float* v = y.data<float>() + ((d * 3 + h) * 4 + w) * 2;
          ASSERT_EQ(v[0], 100.0f * sd + 10.0f * sh + sw) << mask;
          ASSERT_EQ(v[1], -v[0]);
        }
  }
  EXPECT_THROW(kernels::flip(x, 8), Error);
  EXPECT_THROW(kernels::flip(Tensor::zeros({2, 3, 4}), 1), Error);
}

}  // namespace
}  // namespace voxmamba
