// The CUDA backend's device plumbing. Skips, saying why, on machines without a GPU (CI).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/bfloat16.h"
#include "core/float16.h"
#include "core/tensor.h"
#include "kernels/backend.h"
#include "kernels/ops.h"
#include "tests/cuda_test_util.h"
#include "tests/test_util.h"

namespace voxmamba::kernels {
namespace {

TEST(CudaBackend, TensorRoundTripsThroughDeviceMemory) {
  VOXMAMBA_REQUIRE_CUDA_DEVICE();
  Tensor host = Tensor::empty({3, 1000});
  for (std::int64_t i = 0; i < host.numel(); ++i) host.data<float>()[i] = static_cast<float>(i) * 0.5f;
  const Tensor device = host.to(Device::cuda(0));
  EXPECT_EQ(device.device(), Device::cuda(0));
  const Tensor back = device.to(Device::cpu());
  for (std::int64_t i = 0; i < host.numel(); ++i) ASSERT_EQ(back.data<float>()[i], host.data<float>()[i]);
}

TEST(CudaBackend, OpsOnDeviceTensorsStayOnTheDevice) {
  VOXMAMBA_REQUIRE_CUDA_DEVICE();
  const Tensor x = Tensor::full({2, 3}, -1.0f).to(Device::cuda(0));
  const Tensor y = leaky_relu(x, 0.5f);
  EXPECT_EQ(y.device(), Device::cuda(0));
  const Tensor host = y.to(Device::cpu());
  for (std::int64_t i = 0; i < host.numel(); ++i) EXPECT_EQ(host.data<float>()[i], -0.5f);
}

TEST(CudaBackend, ReusesFreedDeviceBlocks) {
  VOXMAMBA_REQUIRE_CUDA_DEVICE();
  void* first = nullptr;
  {
    const Tensor a = Tensor::empty({1 << 20}, DType::f32, Device::cuda(0));
    first = a.raw_data();
  }
  const Tensor b = Tensor::empty({1 << 20}, DType::f32, Device::cuda(0));
  EXPECT_EQ(b.raw_data(), first);  // the caching allocator handed the same block back
}

// Casts `values` to the 16-bit `type` on the GPU and back: the GPU's bits must equal the
// host conversion's (`to_half`, core/bfloat16.h or core/float16.h), and widening them again
// must give the host's float for the same bits.
template <typename Half, typename ToHalf>
void expect_gpu_cast_rounds_like_the_host(const std::vector<float>& values, DType type, ToHalf to_half) {
  Tensor host = Tensor::empty({static_cast<std::int64_t>(values.size())});
  std::memcpy(host.data<float>(), values.data(), values.size() * sizeof(float));
  const Tensor gpu = cast(host.to(Device::cuda(0)), type).to(Device::cpu());
  ASSERT_EQ(gpu.dtype(), type);
  for (std::size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(gpu.data<Half>()[i].bits, to_half(values[i]).bits) << "value " << values[i];
  }
  const Tensor back = cast(gpu.to(Device::cuda(0)), DType::f32).to(Device::cpu());
  for (std::size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(back.data<float>()[i], to_float(gpu.data<Half>()[i])) << "value " << values[i];
  }
}

TEST(CudaBackend, Bfloat16CastRoundsLikeTheHost) {
  VOXMAMBA_REQUIRE_CUDA_DEVICE();
  // Ties both ways, just above a tie, overflow to infinity, signed zero, a subnormal, and
  // plain values.
  expect_gpu_cast_rounds_like_the_host<BFloat16>(
      {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, 1.0f + 0x1p-8f + 0x1p-20f, std::numeric_limits<float>::max(), -0.0f,
       1e-40f, -3.14159f, 65504.0f, -1e30f, 0.1f},
      DType::bf16, [](float v) { return to_bfloat16(v); });
}

TEST(CudaBackend, Float16CastRoundsLikeTheHost) {
  VOXMAMBA_REQUIRE_CUDA_DEVICE();
  // Ties both ways, just above a tie, the largest half and the tie past it, subnormals (a tie
  // among them, and one that rounds into the normals), underflow to zero, signed zero,
  // overflow and plain values.
  expect_gpu_cast_rounds_like_the_host<Float16>(
      {1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, 1.0f + 0x1p-11f + 0x1p-20f, 65504.0f, 65520.0f, 0x1p-24f, 0x1.8p-24f,
       0x1p-14f - 0x1p-25f, 1e-9f, -0.0f, std::numeric_limits<float>::max(), -1e30f, -3.14159f, 0.1f},
      DType::f16, [](float v) { return to_float16(v); });
}

// A 16-bit linear map may write float32 (the logits), never the other 16-bit type.
TEST(CudaBackend, LinearRefusesAnOutputTypeItCannotWrite) {
  VOXMAMBA_REQUIRE_CUDA_DEVICE();
  const Device gpu = Device::cuda(0);
  const Tensor x = cast(testing::random_tensor({4, 8}, 80).to(gpu), DType::f16);
  const Tensor w = cast(testing::random_tensor({8, 8}, 81).to(gpu), DType::f16);
  EXPECT_EQ(linear(x, w, Tensor(), DType::f32).dtype(), DType::f32);
  try {
    linear(x, w, Tensor(), DType::bf16);
    FAIL() << "a float16 linear map wrote bfloat16";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("float16 input cannot give a bfloat16 output"), std::string::npos)
        << error.what();
  }
}

// A residual must have the output's type: a float16 map's own, or float32 where it writes
// float32; the message names the type it needs.
TEST(CudaBackend, LinearResidualHasTheOutputsType) {
  VOXMAMBA_REQUIRE_CUDA_DEVICE();
  const Device gpu = Device::cuda(0);
  const Tensor x = cast(testing::random_tensor({4, 8}, 82).to(gpu), DType::f16);
  const Tensor w = cast(testing::random_tensor({8, 8}, 83).to(gpu), DType::f16);
  const Tensor float32_residual = testing::random_tensor({4, 8}, 84).to(gpu);
  EXPECT_EQ(linear(x, w, Tensor(), DType::f32, float32_residual).dtype(), DType::f32);
  EXPECT_EQ(linear(x, w, Tensor(), std::nullopt, cast(float32_residual, DType::f16)).dtype(), DType::f16);
  try {
    linear(x, w, Tensor(), std::nullopt, float32_residual);
    FAIL() << "a float16 map took a float32 residual";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("the residual must have the output's type (float16)"),
              std::string::npos)
        << error.what();
  }
}

// The model's loader gives 16-bit maps their bias in the output's type (ops.h): on cuBLASLt's
// path (48 -> 48, with and without a residual) and on the narrow kernels' (48 -> 4), the
// result must be that of the float32 bias of the same values, bit for bit. A bias of the
// other 16-bit type is refused.
TEST(CudaBackend, LinearTakesABiasOfItsOutputsType) {
  VOXMAMBA_REQUIRE_CUDA_DEVICE();
  const Device gpu = Device::cuda(0);
  for (const DType type : {DType::f16, DType::bf16}) {
    for (const std::int64_t out : {48, 4}) {
      const Tensor x = cast(testing::random_tensor({1, 315, 48}, 85).to(gpu), type);
      const Tensor w = cast(testing::random_tensor({48, out}, 86).to(gpu), type);
      const Tensor typed_bias = cast(testing::random_tensor({out}, 87).to(gpu), type);
      const Tensor float_bias = cast(typed_bias, DType::f32);
      EXPECT_TRUE(testing::bit_identical(linear(x, w, typed_bias), linear(x, w, float_bias)))
          << dtype_name(type) << ", " << out << " outputs";
      const Tensor residual = cast(testing::random_tensor({1, 315, out}, 88).to(gpu), type);
      EXPECT_TRUE(testing::bit_identical(linear(x, w, typed_bias, std::nullopt, residual),
                                         linear(x, w, float_bias, std::nullopt, residual)))
          << dtype_name(type) << ", " << out << " outputs, with a residual";
    }
  }
  const Tensor x = cast(testing::random_tensor({4, 8}, 89).to(gpu), DType::f16);
  const Tensor w = cast(testing::random_tensor({8, 8}, 90).to(gpu), DType::f16);
  const Tensor bf16_bias = cast(testing::random_tensor({8}, 91).to(gpu), DType::bf16);
  EXPECT_NE(testing::error_of([&] { linear(x, w, bf16_bias); })
                .find("the bias must be float32 or of the output's type (float16), not bfloat16"),
            std::string::npos);
}

// A bfloat16 dense conv that goes to cuDNN (channels in multiples of 8), against the CPU's
// float32 result of the same bfloat16-valued inputs. Each call uses its own depth, so that
// cuDNN plans a new shape (plans are cached per shape) and reads VOXMAMBA_CUDNN_CHOICE.
double cudnn_conv_error(std::int64_t depth) {
  const auto bf16_valued = [](const Tensor& t) { return cast(cast(t, DType::bf16), DType::f32); };
  const Tensor x = bf16_valued(testing::random_tensor({1, depth, 6, 7, 16}, 70));
  const Tensor w = bf16_valued(testing::random_tensor({27, 16, 8}, 71));
  const ConvParams params{3, 1, 1, 1, 1};
  const Tensor expected = conv3d(x, w, Tensor(), params);
  const Device gpu = Device::cuda(0);
  const Tensor got =
      cast(conv3d(cast(x.to(gpu), DType::bf16), cast(w.to(gpu), DType::bf16), Tensor(), params), DType::f32)
          .to(Device::cpu());
  double worst = 0;
  for (std::int64_t i = 0; i < expected.numel(); ++i) {
    const double e = expected.data<float>()[i], g = got.data<float>()[i];
    worst = std::max(worst, std::abs(g - e) / (1.0 + std::abs(e)));
  }
  return worst;
}

TEST(CudaBackend, CudnnEngineChoiceComesFromTheEnvironment) {
  VOXMAMBA_REQUIRE_CUDA_DEVICE();
  if (gpu_library_versions().find("cudnn 0") != std::string::npos) GTEST_SKIP() << "built without cuDNN";
  const char* saved = std::getenv("VOXMAMBA_CUDNN_CHOICE");
  const std::string restore = saved ? saved : "";
  setenv("VOXMAMBA_CUDNN_CHOICE", "fastest", 1);
  try {
    cudnn_conv_error(3);
    ADD_FAILURE() << "an unknown VOXMAMBA_CUDNN_CHOICE was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("VOXMAMBA_CUDNN_CHOICE must be heuristic, heuristic-b or timed"),
              std::string::npos)
        << e.what();
  }
  std::int64_t depth = 4;
  for (const char* choice : {"heuristic", "heuristic-b", "timed"}) {
    setenv("VOXMAMBA_CUDNN_CHOICE", choice, 1);
    EXPECT_LT(cudnn_conv_error(depth++), 2e-2) << choice;  // bfloat16 output rounding
  }
  if (saved) {
    setenv("VOXMAMBA_CUDNN_CHOICE", restore.c_str(), 1);
  } else {
    unsetenv("VOXMAMBA_CUDNN_CHOICE");
  }
}

Tensor filled(const Shape& shape, float value) { return Tensor::full(shape, value).to(Device::cuda(0)); }

float first_value(const Tensor& t) { return t.to(Device::cpu()).data<float>()[0]; }

TEST(CudaBackend, RecordedGraphReplaysOnWhatItsInputsHoldThen) {
  VOXMAMBA_REQUIRE_CUDA_DEVICE();
  Tensor a = filled({1000}, 2.0f);
  const Tensor b = filled({1000}, 3.0f);
  Tensor y;
  const auto graph = record_gpu_graph(Device::cuda(0), [&] { y = add(mul(a, b), a); });
  graph->replay();
  EXPECT_EQ(first_value(y), 8.0f);  // 2 * 3 + 2
  a.copy_from(Tensor::full({1000}, -1.0f));
  graph->replay();
  const Tensor host = y.to(Device::cpu());
  for (std::int64_t i = 0; i < host.numel(); ++i) ASSERT_EQ(host.data<float>()[i], -4.0f);
}

// The recording frees its intermediates as it goes; their buffers must stay the graph's, or
// a tensor allocated between replays would be overwritten by the next one.
TEST(CudaBackend, TensorsAllocatedAfterARecordingGetNoneOfItsBuffers) {
  VOXMAMBA_REQUIRE_CUDA_DEVICE();
  const Tensor a = filled({1 << 18}, 1.5f);
  void* intermediate = nullptr;
  Tensor y;
  const auto graph = record_gpu_graph(Device::cuda(0), [&] {
    const Tensor doubled = add(a, a);
    intermediate = doubled.raw_data();
    y = mul(doubled, a);
  });
  const Tensor later = filled({1 << 18}, 7.0f);  // the intermediate's size: the cache's first pick
  EXPECT_NE(later.raw_data(), intermediate);
  graph->replay();
  graph->replay();
  EXPECT_EQ(first_value(later), 7.0f);
  EXPECT_EQ(first_value(y), 4.5f);
}

// A recording's buffers are held for its replays: the peak-memory figure (benchmarks quote it)
// must count them while the graph lives, and stop when it ends.
TEST(CudaBackend, PeakMemoryCountsARecordingsBuffersWhileItLives) {
  VOXMAMBA_REQUIRE_CUDA_DEVICE();
  constexpr std::size_t kIntermediate = std::size_t(64) << 20;
  const Tensor a = filled({static_cast<std::int64_t>(kIntermediate / 4)}, 1.0f);
  reset_cuda_peak_memory();
  const std::size_t held = cuda_peak_memory_bytes();
  // Two intermediates of kIntermediate bytes, both freed before the recording ends.
  auto graph = record_gpu_graph(Device::cuda(0), [&] { add(add(a, a), a); });
  reset_cuda_peak_memory();
  EXPECT_GE(cuda_peak_memory_bytes(), held + 2 * kIntermediate);
  graph.reset();
  reset_cuda_peak_memory();
  EXPECT_EQ(cuda_peak_memory_bytes(), held);
}

TEST(CudaBackend, RecordingRefusesACopyToTheHostAndTheGpuStaysUsable) {
  VOXMAMBA_REQUIRE_CUDA_DEVICE();
  const Tensor a = filled({64}, 1.0f);
  std::string message;
  try {
    record_gpu_graph(Device::cuda(0), [&] { add(a, a).to(Device::cpu()); });
  } catch (const Error& error) {
    message = error.what();
  }
  EXPECT_NE(message.find("cannot be recorded as a CUDA graph"), std::string::npos) << message;
  EXPECT_EQ(first_value(add(a, a)), 2.0f);
}

TEST(CudaBackend, BuildWithoutCudaRefusesClearly) {
  if (cuda_built()) GTEST_SKIP() << "this build has CUDA";
  EXPECT_EQ(cuda_device_count(), 0);
  EXPECT_THROW(initialize_cuda(), Error);
  EXPECT_THROW(record_gpu_graph(Device::cuda(0), [] {}), Error);
}

}  // namespace
}  // namespace voxmamba::kernels
