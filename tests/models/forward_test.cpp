// VoxMambaNet's forward pass on the CPU: output shape, determinism, input checks, and the
// deformable path reducing to the plain one when its offsets are zero. Numerical parity
// with the PyTorch twin is tested by tools/parity_local.sh (ctest twin_parity_small).
#include <gtest/gtest.h>

#include "core/thread_pool.h"
#include "kernels/backend.h"
#include "kernels/ops.h"
#include "models/voxmamba_net.h"
#include "tests/cuda_test_util.h"
#include "tests/test_util.h"

namespace voxmamba::models {
namespace {

using voxmamba::testing::bit_identical;
using voxmamba::testing::random_tensor;

NetworkConfig tiny_config(bool deformable) {
  NetworkConfig config;
  config.in_channels = 2;
  config.num_classes = 3;
  config.dims = {4, 8, 8, 16};
  config.depths = {1, 1, 1, 2};
  config.hidden = 16;
  config.deformable = {deformable, deformable, deformable, deformable};
  return config;
}

TEST(VoxMambaNet, ForwardGivesLogitsOfTheInputsSizeAndIsDeterministic) {
  const NetworkConfig config = tiny_config(true);
  ParameterMap parameters = initialize_parameters(config, 3);
  randomize_offset_heads(parameters, 0.1, 3);
  const VoxMambaNet net(config, parameters);
  const Tensor x = random_tensor({2, 16, 32, 16, 2}, 4);
  const Tensor y = net.forward(x);
  EXPECT_EQ(y.shape(), (Shape{2, 16, 32, 16, 3}));
  for (std::int64_t i = 0; i < y.numel(); ++i) ASSERT_TRUE(std::isfinite(y.data<float>()[i]));
  EXPECT_TRUE(bit_identical(y, net.forward(x)));
  // The same result whatever the thread count: work is split, never summed in another order.
  set_thread_count(1);
  const Tensor single = net.forward(x);
  set_thread_count(2);
  EXPECT_TRUE(bit_identical(y, single));
}

TEST(VoxMambaNet, UntrainedDeformableConvsEqualThePlainNetwork) {
  // network.md: offset heads start at zero, so an untrained deformable model computes the
  // same function as the non-deformable one with the shared weights.
  const ParameterMap deformable = initialize_parameters(tiny_config(true), 5);
  ParameterMap plain;
  for (const auto& [name, tensor] : deformable) {
    if (name.find("/offset/") == std::string::npos) plain.emplace(name, tensor);
  }
  const Tensor x = random_tensor({1, 16, 16, 16, 2}, 6);
  const Tensor a = VoxMambaNet(tiny_config(true), deformable).forward(x);
  const Tensor b = VoxMambaNet(tiny_config(false), plain).forward(x);
  EXPECT_TRUE(voxmamba::testing::close(a, b, 1e-5));
}

TEST(VoxMambaNet, RejectsInputsItCannotRun) {
  const NetworkConfig config = tiny_config(false);
  const VoxMambaNet net(config, initialize_parameters(config, 1));
  auto expect_error = [&](const Shape& shape, const std::string& fragment) {
    try {
      net.check_input_shape(shape);
      FAIL() << "accepted " << shape_string(shape);
    } catch (const Error& error) {
      EXPECT_NE(std::string(error.what()).find(fragment), std::string::npos) << error.what();
    }
  };
  expect_error({1, 24, 32, 32, 2}, "multiple of 16");
  expect_error({1, 16, 16, 16, 1}, "channels");
  expect_error({16, 16, 16, 2}, "rank 5");
  EXPECT_NO_THROW(net.check_input_shape({1, 16, 48, 32, 2}));
}

TEST(VoxMambaNet, SixteenBitActivationsAreRefusedOnTheCpu) {
  const NetworkConfig config = tiny_config(false);
  EXPECT_THROW(VoxMambaNet(config, initialize_parameters(config, 1), Device::cpu(), DType::bf16), Error);
  EXPECT_THROW(VoxMambaNet(config, initialize_parameters(config, 1), Device::cpu(), DType::f16), Error);
}

// Share of voxels whose predicted class (argmax over the last axis) agrees.
double argmax_agreement(const Tensor& a, const Tensor& b) {
  const Tensor la = kernels::argmax(a), lb = kernels::argmax(b);
  std::int64_t same = 0;
  for (std::int64_t i = 0; i < la.numel(); ++i) same += la.data<std::int32_t>()[i] == lb.data<std::int32_t>()[i];
  return static_cast<double>(same) / static_cast<double>(la.numel());
}

// The whole network on the GPU against the CPU engine (itself checked against the reference
// ops and the PyTorch twin): float32 tightly, bfloat16 and float16 within their rounding,
// deformable offsets random so that the trilinear paths are exercised.
TEST(VoxMambaNet, GpuForwardMatchesTheCpuInFloat32AndSixteenBitTypes) {
  VOXMAMBA_REQUIRE_CUDA_DEVICE();
  NetworkConfig config = tiny_config(true);
  config.dims = {16, 16, 32, 32};  // channel counts cuDNN's tensor-core kernels take
  config.hidden = 32;
  ParameterMap parameters = initialize_parameters(config, 7);
  randomize_offset_heads(parameters, 0.3, 7);
  const Tensor x = random_tensor({1, 32, 32, 32, 2}, 8);
  const Tensor expected = VoxMambaNet(config, parameters).forward(x);
  const Tensor fp32 = VoxMambaNet(config, parameters, Device::cuda(0)).forward(x.to(Device::cuda(0)));
  EXPECT_EQ(fp32.dtype(), DType::f32);
  EXPECT_TRUE(voxmamba::testing::close(fp32.to(Device::cpu()), expected, 1e-4));
  // float16 keeps 3 more fraction bits than bfloat16: its logits must be closer to float32's.
  double nmse[2] = {0, 0};
  const DType types[2] = {DType::bf16, DType::f16};
  for (int t = 0; t < 2; ++t) {
    const Tensor logits = VoxMambaNet(config, parameters, Device::cuda(0), types[t]).forward(x.to(Device::cuda(0)));
    EXPECT_EQ(logits.dtype(), DType::f32);  // logits come back in float32 whatever the activations
    const Tensor host = logits.to(Device::cpu());
    const voxmamba::testing::Difference d = voxmamba::testing::compare(host, expected);
    EXPECT_LT(d.max_abs, 0.05 * d.max_reference)
        << dtype_name(types[t]) << ": max |difference| " << d.max_abs << " of " << d.max_reference;
    EXPECT_LT(d.nmse, 1e-3) << dtype_name(types[t]);
    EXPECT_GT(argmax_agreement(host, expected), 0.98) << dtype_name(types[t]);
    nmse[t] = d.nmse;
  }
  EXPECT_LT(nmse[1], nmse[0] / 4) << "float16 nmse " << nmse[1] << " vs bfloat16 " << nmse[0];
}

}  // namespace
}  // namespace voxmamba::models
