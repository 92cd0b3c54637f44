// Sliding-window inference against the network's own forward pass: on a volume of exactly one
// patch the blended probabilities are softmax(forward) (the importance weights cancel), and
// with mirroring they are the mean of the eight mirrored passes. A network whose output is
// not finite (float16 overflow) is an error, never a label map.
#include "pipeline/sliding_window_inference.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "kernels/backend.h"
#include "kernels/ops.h"
#include "pipeline/model_store.h"
#include "pipeline/sliding_window.h"
#include "tests/cuda_test_util.h"
#include "tests/test_util.h"

namespace voxmamba::pipeline {
namespace {

using voxmamba::testing::close;
using voxmamba::testing::error_of;
using voxmamba::testing::random_tensor;

models::NetworkConfig tiny_config() {
  models::NetworkConfig config;
  config.num_classes = 3;
  config.dims = {4, 8, 8, 16};
  config.depths = {1, 1, 1, 1};
  config.hidden = 16;
  config.deformable = {false, false, true, true};
  return config;
}

TEST(SlidingWindowInference, OnePatchEqualsSoftmaxOfForward) {
  const models::VoxMambaNet net(tiny_config(), models::initialize_parameters(tiny_config(), 2));
  const Tensor volume = random_tensor({32, 16, 48, 1}, 3);
  const Tensor probabilities = predict_probabilities(net, volume, {{32, 16, 48}, 0.5, false});
  const Tensor expected = kernels::softmax(net.forward(volume.reshape({1, 32, 16, 48, 1}))).reshape({32, 16, 48, 3});
  EXPECT_TRUE(close(probabilities, expected, 1e-6));
}

TEST(SlidingWindowInference, MirroringAveragesTheEightFlippedPasses) {
  const models::VoxMambaNet net(tiny_config(), models::initialize_parameters(tiny_config(), 4));
  const Tensor volume = random_tensor({16, 32, 16, 1}, 5);
  const Tensor batch = volume.reshape({1, 16, 32, 16, 1});
  Tensor expected = Tensor::zeros({1, 16, 32, 16, 3});
  for (int mask = 0; mask < 8; ++mask) {
    const Tensor pass = kernels::flip(kernels::softmax(net.forward(kernels::flip(batch, mask))), mask);
    for (std::int64_t i = 0; i < pass.numel(); ++i) expected.data<float>()[i] += pass.data<float>()[i] / 8.0f;
  }
  const Tensor probabilities = predict_probabilities(net, volume, {{16, 32, 16}, 0.5, true});
  EXPECT_TRUE(close(probabilities, expected.reshape({16, 32, 16, 3}), 1e-6));
  // Mirroring changes the result of an untrained network: the test above is not vacuous.
  EXPECT_FALSE(close(predict_probabilities(net, volume, {{16, 32, 16}, 0.5, false}), expected.reshape({16, 32, 16, 3}), 1e-4));
}

TEST(SlidingWindowInference, ReportsProgressForEveryPass) {
  const models::VoxMambaNet net(tiny_config(), models::initialize_parameters(tiny_config(), 6));
  std::vector<std::int64_t> seen;
  std::int64_t total_seen = 0;
  predict_probabilities(net, random_tensor({16, 16, 40, 1}, 7), {{16, 16, 16}, 0.5, false},
                        [&](std::int64_t done, std::int64_t total) {
                          seen.push_back(done);
                          total_seen = total;
                        });
  // w: starts {0, 8, 16, 24} for 40 voxels, patch 16, step 8 -> 4 windows.
  EXPECT_EQ(total_seen, 4);
  EXPECT_EQ(seen, (std::vector<std::int64_t>{1, 2, 3, 4}));
}

// Finite values pass; one infinity or NaN among them is found and counted, and only float16
// is told to switch type.
TEST(SlidingWindowInference, NonFiniteOutputIsCountedAndExplained) {
  Tensor values = Tensor::full({4, 3}, 0.5f);
  EXPECT_NO_THROW(require_finite_output(values, DType::f32));
  values.data<float>()[7] = std::numeric_limits<float>::infinity();
  const std::string wide = error_of([&] { require_finite_output(values, DType::f32); });
  EXPECT_NE(wide.find("produced 1 NaN or infinite"), std::string::npos) << wide;
  EXPECT_EQ(wide.find("--precision"), std::string::npos) << wide;
  values.data<float>()[2] = std::numeric_limits<float>::quiet_NaN();
  const std::string half = error_of([&] { require_finite_output(values, DType::f16); });
  EXPECT_NE(half.find("produced 2 NaN or infinite"), std::string::npos) << half;
  EXPECT_NE(half.find("--precision bf16"), std::string::npos) << half;
}

// Activations past float16's range (65504) become infinities and then NaN; the error names
// the remedy. The stem's weights scaled by 1e6 overflow float16 in the first layer but not
// bfloat16, which has float32's range.
TEST(SlidingWindowInference, Float16OverflowIsReportedWithItsRemedy) {
  VOXMAMBA_REQUIRE_CUDA_DEVICE();
  models::ParameterMap parameters = models::initialize_parameters(tiny_config(), 10);
  Tensor& stem = parameters.at("encoder/stem/weight");
  for (std::int64_t i = 0; i < stem.numel(); ++i) stem.data<float>()[i] *= 1e6f;
  const Tensor volume = random_tensor({16, 16, 16, 1}, 11);
  const SlidingWindowOptions options{{16, 16, 16}, 0.5, false};
  const models::VoxMambaNet half(tiny_config(), parameters, Device::cuda(0), DType::f16);
  const std::string message = error_of([&] { predict_probabilities(half, volume, options); });
  EXPECT_NE(message.find("float16"), std::string::npos) << message;
  EXPECT_NE(message.find("--precision bf16"), std::string::npos) << message;
  const models::VoxMambaNet wide(tiny_config(), parameters, Device::cuda(0), DType::bf16);
  EXPECT_EQ(error_of([&] { predict_probabilities(wide, volume, options); }), "");
}

}  // namespace
}  // namespace voxmamba::pipeline
