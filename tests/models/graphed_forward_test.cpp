// GraphedForward: the patch forward recorded once as a CUDA graph must give, on every replay,
// the logits the eager forward gives for that input, bit for bit (same kernels, same plans,
// same buffers), and hand each caller logits of its own. On the CPU it is the plain forward.
#include "models/graphed_forward.h"

#include <gtest/gtest.h>

#include "kernels/backend.h"
#include "tests/cuda_test_util.h"
#include "tests/test_util.h"

namespace voxmamba::models {
namespace {

using voxmamba::testing::bit_identical;
using voxmamba::testing::random_tensor;

// Channel counts cuDNN's tensor-core kernels take; every stage deformable, offsets random, so
// the replay covers the trilinear gathers too.
NetworkConfig small_gpu_config() {
  NetworkConfig config;
  config.in_channels = 1;
  config.num_classes = 3;
  config.dims = {16, 16, 32, 32};
  config.depths = {1, 1, 1, 1};
  config.hidden = 32;
  config.deformable = {true, true, true, true};
  return config;
}

ParameterMap seeded_parameters(const NetworkConfig& config) {
  ParameterMap parameters = initialize_parameters(config, 11);
  randomize_offset_heads(parameters, 0.4, 11);
  return parameters;
}

TEST(GraphedForward, ReplaysGiveTheEagerLogitsBitForBit) {
  VOXMAMBA_REQUIRE_CUDA_DEVICE();
  const NetworkConfig config = small_gpu_config();
  const VoxMambaNet net(config, seeded_parameters(config), Device::cuda(0), DType::f16);
  const Shape shape{1, 32, 32, 32, 1};
  const Tensor x1 = random_tensor(shape, 1).to(Device::cuda(0));
  const Tensor x2 = random_tensor(shape, 2).to(Device::cuda(0));
  const Tensor x3 = random_tensor(shape, 3).to(Device::cuda(0));
  GraphedForward graphed(net);
  const Tensor first = graphed.forward(x1);
  EXPECT_FALSE(graphed.replayed());  // the first input of a shape runs eagerly and is recorded
  const Tensor second = graphed.forward(x2);
  EXPECT_TRUE(graphed.replayed());
  const Tensor third = graphed.forward(x3);
  EXPECT_TRUE(graphed.replayed());
  EXPECT_TRUE(bit_identical(first, net.forward(x1)));
  EXPECT_TRUE(bit_identical(third, net.forward(x3)));
  // The third replay overwrote the recording's output; the second caller's logits are its own.
  EXPECT_TRUE(bit_identical(second, net.forward(x2)));
  EXPECT_FALSE(bit_identical(second, third));
}

TEST(GraphedForward, ANewShapeIsRecordedAgain) {
  VOXMAMBA_REQUIRE_CUDA_DEVICE();
  const NetworkConfig config = small_gpu_config();
  const VoxMambaNet net(config, seeded_parameters(config), Device::cuda(0), DType::bf16);
  GraphedForward graphed(net);
  graphed.forward(random_tensor({1, 32, 32, 32, 1}, 4).to(Device::cuda(0)));
  const Tensor other = random_tensor({1, 16, 32, 48, 1}, 5).to(Device::cuda(0));
  const Tensor eager = graphed.forward(other);
  EXPECT_FALSE(graphed.replayed());
  EXPECT_EQ(eager.shape(), (Shape{1, 16, 32, 48, 3}));
  const Tensor replayed = graphed.forward(other);
  EXPECT_TRUE(graphed.replayed());
  EXPECT_TRUE(bit_identical(replayed, eager));
  EXPECT_THROW(graphed.forward(random_tensor({1, 20, 32, 32, 1}, 6).to(Device::cuda(0))), Error);
}

TEST(GraphedForward, RecordingOffIsThePlainForward) {
  VOXMAMBA_REQUIRE_CUDA_DEVICE();
  const NetworkConfig config = small_gpu_config();
  const VoxMambaNet net(config, seeded_parameters(config), Device::cuda(0), DType::f16);
  GraphedForward eager(net, false);
  const Tensor x = random_tensor({1, 32, 32, 32, 1}, 7).to(Device::cuda(0));
  eager.forward(x);
  const Tensor again = eager.forward(x);
  EXPECT_FALSE(eager.replayed());
  EXPECT_TRUE(bit_identical(again, net.forward(x)));
}

TEST(GraphedForward, OnTheCpuItIsThePlainForward) {
  NetworkConfig config = small_gpu_config();
  config.dims = {4, 8, 8, 16};
  config.hidden = 16;
  const VoxMambaNet net(config, seeded_parameters(config));
  GraphedForward graphed(net);
  const Tensor x = random_tensor({1, 16, 16, 16, 1}, 8);
  graphed.forward(x);
  const Tensor again = graphed.forward(x);
  EXPECT_FALSE(graphed.replayed());
  EXPECT_TRUE(bit_identical(again, net.forward(x)));
}

}  // namespace
}  // namespace voxmamba::models
