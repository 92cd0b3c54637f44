// The selective scan in each orientation against a naive sequential loop written here from
// network.md's equations, on an explicitly reordered copy of the sequence; and the GPU's
// chunked scan at a size where it takes its long chunks.
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "kernels/backend.h"
#include "kernels/ops.h"
#include "kernels/reference/reference_ops.h"
#include "tests/cuda_test_util.h"
#include "tests/test_util.h"

namespace voxmamba::kernels {
namespace {

using voxmamba::testing::close;
using voxmamba::testing::random_tensor;

// The orientation's visiting order, computed from network.md's definitions directly.
std::vector<std::int64_t> visiting_order(TokenOrder order, const VolumeShape& v) {
  std::vector<std::int64_t> tokens;
  if (order == TokenOrder::Slice) {
    for (std::int64_t h = 0; h < v.height; ++h)
      for (std::int64_t w = 0; w < v.width; ++w)
        for (std::int64_t d = 0; d < v.depth; ++d) tokens.push_back((d * v.height + h) * v.width + w);
  } else {
    for (std::int64_t t = 0; t < v.tokens(); ++t) tokens.push_back(order == TokenOrder::Forward ? t : v.tokens() - 1 - t);
  }
  return tokens;
}

Tensor naive_scan(const ScanInputs& in, TokenOrder order, const VolumeShape& v) {
  const std::int64_t N = in.u.dim(0), L = in.u.dim(1), E = in.u.dim(2), S = in.A.dim(1);
  Tensor y = Tensor::empty(in.u.shape());
  const std::vector<std::int64_t> tokens = visiting_order(order, v);
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t e = 0; e < E; ++e) {
      std::vector<double> h(S, 0.0);
      for (std::int64_t t : tokens) {
        const std::int64_t row = n * L + t;
        const double raw = in.delta.data<float>()[row * E + e] + in.delta_bias.data<float>()[e];
        const double dt = raw > 20 ? raw : std::log1p(std::exp(raw));
        const double u = in.u.data<float>()[row * E + e];
        double out = in.D.data<float>()[e] * u;
        for (std::int64_t s = 0; s < S; ++s) {
          h[s] = std::exp(dt * in.A.data<float>()[e * S + s]) * h[s] + dt * in.B.data<float>()[row * S + s] * u;
          out += in.C.data<float>()[row * S + s] * h[s];
        }
        y.data<float>()[row * E + e] = static_cast<float>(out);
      }
    }
  return y;
}

class SelectiveScanTest : public ::testing::TestWithParam<TokenOrder> {};

TEST_P(SelectiveScanTest, EqualsNaiveSequentialLoop) {
  const TokenOrder order = GetParam();
  for (const VolumeShape& v : {VolumeShape{4, 3, 5}, VolumeShape{1, 1, 7}, VolumeShape{16, 2, 1}}) {
    const std::int64_t L = v.tokens(), E = 11, S = 16;
    ScanInputs in;
    in.u = random_tensor({2, L, E}, 1);
    in.delta = random_tensor({2, L, E}, 2, -4, 2);
    in.delta_bias = random_tensor({E}, 3, -3, 0);
    in.A = random_tensor({E, S}, 4, -8, -0.05f);
    in.B = random_tensor({2, L, S}, 5);
    in.C = random_tensor({2, L, S}, 6);
    in.D = random_tensor({E}, 7);
    const Tensor expected = naive_scan(in, order, v);
    EXPECT_TRUE(close(selective_scan(in, order, v), expected, 1e-5)) << token_order_name(order);
    EXPECT_TRUE(close(reference::selective_scan(in, order, v), expected, 1e-6)) << token_order_name(order);
  }
}

TEST(SelectiveScan, OrdersDifferOnTheSameInput) {
  // Guards against an orientation silently falling back to the forward order.
  const VolumeShape v{3, 2, 4};
  ScanInputs in;
  in.u = random_tensor({1, 24, 3}, 8);
  in.delta = random_tensor({1, 24, 3}, 9);
  in.delta_bias = random_tensor({3}, 10);
  in.A = random_tensor({3, 4}, 11, -2, -0.5f);
  in.B = random_tensor({1, 24, 4}, 12);
  in.C = random_tensor({1, 24, 4}, 13);
  in.D = random_tensor({3}, 14);
  const Tensor forward = selective_scan(in, TokenOrder::Forward, v);
  EXPECT_FALSE(close(selective_scan(in, TokenOrder::Backward, v), forward, 1e-3));
  EXPECT_FALSE(close(selective_scan(in, TokenOrder::Slice, v), forward, 1e-3));
}

// The epilogue (ops.h) against the ops it replaces in the Mamba block: the plain scan, plus
// the sum, times SiLU of the gate; and a sum or gate of another shape is refused by name.
TEST(SelectiveScan, EpilogueAddsTheSumThenGatesWithSilu) {
  const VolumeShape v{2, 3, 4};
  ScanInputs in;
  in.u = random_tensor({2, 24, 5}, 15);
  in.delta = random_tensor({2, 24, 5}, 16, -3, 1);
  in.delta_bias = random_tensor({5}, 17, -2, 0);
  in.A = random_tensor({5, 16}, 18, -4, -0.1f);
  in.B = random_tensor({2, 24, 16}, 19);
  in.C = random_tensor({2, 24, 16}, 20);
  in.D = random_tensor({5}, 21);
  const Tensor plain = selective_scan(in, TokenOrder::Slice, v);
  const Tensor sum = random_tensor({2, 24, 5}, 22, -2, 2), gate = random_tensor({2, 24, 5}, 23, -4, 4);
  in.sum = sum;
  EXPECT_TRUE(close(selective_scan(in, TokenOrder::Slice, v), add(plain, sum), 1e-6));
  in.gate = gate;
  const Tensor expected = mul(add(plain, sum), silu(gate));
  EXPECT_TRUE(close(selective_scan(in, TokenOrder::Slice, v), expected, 1e-6));
  EXPECT_TRUE(close(reference::selective_scan(in, TokenOrder::Slice, v), expected, 1e-6));

  in.gate = random_tensor({2, 24, 4}, 24);
  try {
    selective_scan(in, TokenOrder::Slice, v);
    ADD_FAILURE() << "a gate of another shape was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("gate must have u's shape [2, 24, 5]"), std::string::npos)
        << e.what();
  }
}

TEST(TokenOrder, SliceVisitsEveryVoxelThroughAllSlicesFirst) {
  const VolumeShape v{3, 2, 2};
  const std::vector<std::int64_t> expected = visiting_order(TokenOrder::Slice, v);
  for (std::int64_t i = 0; i < v.tokens(); ++i) EXPECT_EQ(token_at(i, TokenOrder::Slice, v), expected[i]);
  EXPECT_EQ(token_at(0, TokenOrder::Backward, v), 11);
  EXPECT_EQ(token_at(1, TokenOrder::Slice, v), 4);  // (h, w) = (0, 0), d = 1
}

// The GPU scans 128-token chunks once N E L / 128 reaches 1,024 threads a multiprocessor
// (kernels/cuda/selective_scan.cu; 196,608 here, enough for up to 192 multiprocessors), shorter ones
// below: ops_test's cases all take 16-token chunks. float32, in the forward and the slice order
// (16,384 tokens: 128 chunks); tolerance as for the long scans there.
TEST(SelectiveScan, GpuLongChunksMatchTheReference) {
  VOXMAMBA_REQUIRE_CUDA_DEVICE();
  const VolumeShape v{16, 32, 32};
  const std::int64_t L = v.tokens(), E = 1536, S = 16;
  ScanInputs in;
  in.u = random_tensor({1, L, E}, 15);
  in.delta = random_tensor({1, L, E}, 16, -4, 0);
  in.delta_bias = random_tensor({E}, 17, -2, 0);
  in.A = random_tensor({E, S}, 18, -1, -0.01f);
  in.B = random_tensor({1, L, S}, 19);
  in.C = random_tensor({1, L, S}, 20);
  in.D = random_tensor({E}, 21);
  const Device gpu = Device::cuda(0);
  ScanInputs on_gpu;
  for (auto [from, to] : {std::pair{&in.u, &on_gpu.u},
                          {&in.delta, &on_gpu.delta},
                          {&in.delta_bias, &on_gpu.delta_bias},
                          {&in.A, &on_gpu.A},
                          {&in.B, &on_gpu.B},
                          {&in.C, &on_gpu.C},
                          {&in.D, &on_gpu.D}}) {
    *to = from->to(gpu);
  }
  for (TokenOrder order : {TokenOrder::Forward, TokenOrder::Slice}) {
    EXPECT_TRUE(close(selective_scan(on_gpu, order, v).to(Device::cpu()),
                      reference::selective_scan(in, order, v), 5e-5))
        << token_order_name(order);
  }
}

// 64-token chunks (N E L / 64 = 131,072 threads: at least 512 a multiprocessor for up to 256
// of them, and N E L / 128 below 1,024 a multiprocessor above 64 of them), with the epilogue
// (sum and gate): the staged walk's tiles hold 32 tokens in 16 bits and 16 in float32, so
// every chunk spans two or four tiles, and 256 chunks cross 16 segments of the carry kernel.
// Each type's inputs are values it holds exactly; tolerances as ops_test's (16-bit
// intermediates and the output's rounding), float16 a quarter of bfloat16's.
TEST(SelectiveScan, GpuMiddleChunksWithEpilogueMatchTheReference) {
  VOXMAMBA_REQUIRE_CUDA_DEVICE();
  const VolumeShape v{16, 32, 32};
  const std::int64_t L = v.tokens(), E = 512, S = 16;
  const Device gpu = Device::cuda(0);
  for (const auto& [dtype, tolerance] :
       {std::pair{DType::f32, 5e-5}, {DType::bf16, 1e-2}, {DType::f16, 2.5e-3}}) {
    // Activations as the type holds them; parameters stay float32, as in the engine.
    const auto activation = [&, dtype = dtype](const Shape& shape, std::uint64_t seed, float low,
                                               float high) {
      const Tensor t = random_tensor(shape, seed, low, high);
      return dtype == DType::f32 ? t : reference::cast(reference::cast(t, dtype), DType::f32);
    };
    ScanInputs in;
    in.u = activation({1, L, E}, 22, -1, 1);
    in.delta = activation({1, L, E}, 23, -4, 0);
    in.delta_bias = random_tensor({E}, 24, -2, 0);
    in.A = random_tensor({E, S}, 25, -1, -0.01f);
    in.B = activation({1, L, S}, 26, -1, 1);
    in.C = activation({1, L, S}, 27, -1, 1);
    in.D = random_tensor({E}, 28);
    in.sum = activation({1, L, E}, 29, -2, 2);
    in.gate = activation({1, L, E}, 30, -4, 4);
    ScanInputs on_gpu = in;
    for (Tensor* t : {&on_gpu.u, &on_gpu.delta, &on_gpu.B, &on_gpu.C, &on_gpu.sum, &on_gpu.gate}) {
      *t = cast(t->to(gpu), dtype);
    }
    for (Tensor* t : {&on_gpu.delta_bias, &on_gpu.A, &on_gpu.D}) *t = t->to(gpu);
    for (TokenOrder order : {TokenOrder::Backward, TokenOrder::Slice}) {
      EXPECT_TRUE(close(cast(selective_scan(on_gpu, order, v), DType::f32).to(Device::cpu()),
                        reference::selective_scan(in, order, v), tolerance))
          << token_order_name(order) << " in " << dtype_name(dtype);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Orders, SelectiveScanTest,
                         ::testing::Values(TokenOrder::Forward, TokenOrder::Backward, TokenOrder::Slice),
                         [](const ::testing::TestParamInfo<TokenOrder>& param_info) {
                           return std::string(token_order_name(param_info.param));
                         });

}  // namespace
}  // namespace voxmamba::kernels
