// Weights that the GPU holds in float16 are checked against that range when a model loads,
// so that a weight past 65504 is refused with its name instead of surfacing as non-finite
// logits: the check itself on the CPU, and the loader's use of it on the GPU (fp16 holds the
// dense and linear weights in float16, and the biases of linear maps with float16 outputs;
// both 16-bit types the deformable convs' tap weights).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <string>

#include "core/float16.h"
#include "models/layers.h"
#include "models/voxmamba_net.h"
#include "tests/cuda_test_util.h"
#include "tests/test_util.h"

namespace voxmamba::models {
namespace {

using voxmamba::testing::error_of;

Tensor values(std::initializer_list<float> list) {
  Tensor t = Tensor::empty({static_cast<std::int64_t>(list.size())});
  std::copy(list.begin(), list.end(), t.data<float>());
  return t;
}

// What require_float16_range says of these values, or "" when it accepts them.
std::string range_error(std::initializer_list<float> list) {
  return error_of([&] { require_float16_range(values(list), "tensor 'a/b'", "use fp32"); });
}

TEST(Float16Range, AcceptsWhatRoundsWithinAndNamesWhatRoundsPast) {
  // 65519 rounds down to 65504, float16's largest value; 65520 is the tie that rounds up.
  EXPECT_EQ(range_error({0.0f, -65504.0f, 65519.0f, 1e-9f}), "");
  const std::string message = range_error({1.0f, -65520.0f});
  EXPECT_NE(message.find("tensor 'a/b'"), std::string::npos) << message;
  EXPECT_NE(message.find("-65520"), std::string::npos) << message;
  EXPECT_NE(message.find("65504"), std::string::npos) << message;
  EXPECT_NE(message.find("use fp32"), std::string::npos) << message;
}

// The check's limit is the conversion's: refused exactly where the GPU's rounding (core/float16.h
// rounds bit for bit as it does) would give an infinity.
TEST(Float16Range, RefusesExactlyWhatRoundsToInfinity) {
  for (const float value :
       {65504.0f, std::nextafter(65520.0f, 0.0f), 65520.0f, std::nextafter(65520.0f, 1e9f),
        -std::nextafter(65520.0f, 0.0f), -65520.0f, 1e30f}) {
    const bool overflows = (to_float16(value).bits & 0x7fffu) == 0x7c00u;
    EXPECT_EQ(!range_error({value}).empty(), overflows) << value;
  }
}

NetworkConfig small_deformable_config() {
  NetworkConfig config;
  config.in_channels = 1;
  config.num_classes = 2;
  config.dims = {8, 8, 16, 16};
  config.depths = {1, 1, 1, 1};
  config.hidden = 16;
  config.deformable = {true, true, true, true};
  return config;
}

// `parameters` with the first value of tensor `name` set to `value`, sharing the storage of
// the others.
ParameterMap with_first_value(const ParameterMap& parameters, const std::string& name, float value) {
  ParameterMap changed = parameters;
  Tensor tensor = changed.at(name).clone();
  tensor.data<float>()[0] = value;
  changed.at(name) = tensor;
  return changed;
}

// What loading the network on the GPU says, or "" when it loads.
std::string gpu_load_error(const NetworkConfig& config, const ParameterMap& parameters, DType activations) {
  return error_of([&] { VoxMambaNet(config, parameters, Device::cuda(0), activations); });
}

TEST(Float16Range, GpuLoaderRefusesWeightsBeyondFloat16WhereItHoldsThemSo) {
  VOXMAMBA_REQUIRE_CUDA_DEVICE();
  const NetworkConfig config = small_deformable_config();
  const ParameterMap seeded = initialize_parameters(config, 2);
  // A dense conv's weight: float16 holds it in fp16 only.
  const ParameterMap dense = with_first_value(seeded, "decoder/dec0/res/conv1/weight", 1e5f);
  const std::string fp16 = gpu_load_error(config, dense, DType::f16);
  EXPECT_NE(fp16.find("decoder/dec0/res/conv1"), std::string::npos) << fp16;
  EXPECT_NE(fp16.find("--precision bf16 or fp32"), std::string::npos) << fp16;
  EXPECT_EQ(gpu_load_error(config, dense, DType::bf16), "");
  EXPECT_EQ(gpu_load_error(config, dense, DType::f32), "");
  // A deformable conv's tap weight: float16 in both 16-bit types.
  const std::string tap = "encoder/stages/1/blocks/0/dlka/lka/dw7/weight";
  const ParameterMap deformable = with_first_value(seeded, tap, -7e4f);
  for (DType activations : {DType::bf16, DType::f16}) {
    const std::string message = gpu_load_error(config, deformable, activations);
    EXPECT_NE(message.find("tensor '" + tap + "'"), std::string::npos)
        << dtype_name(activations) << ": " << message;
    EXPECT_NE(message.find("--precision fp32"), std::string::npos) << message;
  }
  EXPECT_EQ(gpu_load_error(config, deformable, DType::f32), "");
  // Weights within range load in every type.
  for (DType activations : {DType::f32, DType::bf16, DType::f16})
    EXPECT_EQ(gpu_load_error(config, seeded, activations), "");
}

// A linear map's bias is held in float16 only where its output is float16: fc1's is refused
// past 65504 in fp16, while the head's, which makes the float32 logits, is added in float32
// in every type and reaches the logits without a 16-bit rounding.
TEST(Float16Range, LinearBiasIsCheckedOnlyWhereItsOutputIsFloat16) {
  VOXMAMBA_REQUIRE_CUDA_DEVICE();
  NetworkConfig config = small_deformable_config();
  config.dims = {16, 16, 32, 32};  // channel counts cuDNN's tensor-core kernels take
  config.hidden = 32;
  const Device gpu = Device::cuda(0);
  const ParameterMap seeded = initialize_parameters(config, 3);
  const std::string fc1 = "encoder/stages/0/out/mlp/fc1/bias";
  const ParameterMap large_fc1 = with_first_value(seeded, fc1, 1e5f);
  const std::string message = gpu_load_error(config, large_fc1, DType::f16);
  EXPECT_NE(message.find("tensor '" + fc1 + "'"), std::string::npos) << message;
  EXPECT_NE(message.find("--precision bf16 or fp32"), std::string::npos) << message;
  EXPECT_EQ(gpu_load_error(config, large_fc1, DType::bf16), "");

  const std::string head = "decoder/head/out/bias";
  const float large = 1e5f;
  const double shift = double(large) - seeded.at(head).data<float>()[0];
  const ParameterMap large_head = with_first_value(seeded, head, large);
  const Tensor x = voxmamba::testing::random_tensor({1, 16, 16, 16, 1}, 5).to(gpu);
  for (DType activations : {DType::f16, DType::bf16}) {
    const Tensor base = VoxMambaNet(config, seeded, gpu, activations).forward(x).to(Device::cpu());
    Tensor shifted;
    ASSERT_EQ(error_of([&] { shifted = VoxMambaNet(config, large_head, gpu, activations).forward(x); }), "")
        << dtype_name(activations);
    shifted = shifted.to(Device::cpu());
    ASSERT_EQ(shifted.shape(), base.shape());
    const std::int64_t classes = base.dim(4);
    // The rest of the network is the same in both. The head sums its inputs' products onto the
    // bias in float32 (narrow_linear.cu), so each of its inputs' additions rounds at 2^16, by
    // up to half a unit in the last place there, 2^-8. A bias rounded to bfloat16 would be off
    // by about 160, and one in float16 would be an infinity.
    const double tolerance = seeded.at("decoder/head/out/weight").dim(1) * std::ldexp(1.0, -8);
    for (std::int64_t i = 0; i < base.numel(); ++i) {
      const double expected = base.data<float>()[i] + (i % classes == 0 ? shift : 0.0);
      ASSERT_NEAR(shifted.data<float>()[i], expected, tolerance) << dtype_name(activations) << " at " << i;
    }
  }
}

}  // namespace
}  // namespace voxmamba::models
