#pragma once
// The harness that runs an op case on the reference (kernels/reference, plain loops on the
// CPU) and on a backend, and compares the two: shared by ops_test.cpp (hand-picked shapes)
// and random_shapes_test.cpp (drawn shapes).
//
// 16-bit runs: activations and GEMM weights (input()) are drawn, rounded to values of the
// 16-bit type, and given to the reference as those float32 values and to the GPU in the
// 16-bit type; float32 parameters (param()) are the same on both sides. What remains is the
// kernels' own error: 16-bit intermediates and the output's rounding, hence the looser
// tolerance.
#include <gtest/gtest.h>

#include <functional>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "kernels/ops.h"
#include "kernels/reference/reference_ops.h"
#include "tests/cuda_test_util.h"
#include "tests/test_util.h"

namespace voxmamba::kernels::op_cases {

// Where the harness puts a case's inputs: the CPU for the reference and the CPU backend, the
// GPU for the CUDA backend; and the activations' type (float32, bfloat16 or float16). Cases
// build activations and GEMM weights through input(), every other (float32) parameter through
// param().
inline Device g_input_device = Device::cpu();
inline DType g_activations = DType::f32;

inline Tensor input(const Shape& shape, std::uint64_t seed, float low = -1.0f, float high = 1.0f) {
  Tensor t = voxmamba::testing::random_tensor(shape, seed, low, high);
  if (g_activations == DType::f32) return t.to(g_input_device);
  t = reference::cast(reference::cast(t, g_activations), DType::f32);  // values the 16-bit type holds exactly
  return g_input_device.is_cpu() ? t : kernels::cast(t.to(g_input_device), g_activations);
}

inline Tensor param(const Shape& shape, std::uint64_t seed, float low = -1.0f, float high = 1.0f) {
  return voxmamba::testing::random_tensor(shape, seed, low, high).to(g_input_device);
}

struct OpCase {
  Op op;
  std::string name;
  // Builds the case's inputs from fixed seeds and runs the op on the reference (true) or
  // the dispatched backend (false).
  std::function<Tensor(bool reference)> run;
  double tolerance = 2e-5;
  double bf16_tolerance = 1e-2;  // float16 gets a quarter of it: it rounds 8 times finer
  bool float32_output = false;   // the op writes float32 even from 16-bit inputs
};

// What GoogleTest prints for a case (instead of its bytes).
inline void PrintTo(const OpCase& c, std::ostream* os) { *os << c.name; }

// In a case's run(bool reference): the reference's op or the dispatched one.
#define CALL(fn, ...) (reference ? reference::fn(__VA_ARGS__) : kernels::fn(__VA_ARGS__))

class OpCaseTest : public ::testing::TestWithParam<OpCase> {
 protected:
  void TearDown() override {
    g_input_device = Device::cpu();
    g_activations = DType::f32;
  }

  // Runs the case on the reference (inputs on the CPU) and on `device`'s backend, with
  // `activations` of that type (the reference computes on the same values in float32).
  void expect_backend_matches_reference(Device device, DType activations = DType::f32) {
    const OpCase& c = GetParam();
    const bool half = activations != DType::f32;
    g_activations = activations;
    g_input_device = Device::cpu();
    const Tensor expected = c.run(true);
    g_input_device = device;
    Tensor actual = c.run(false);
    if (half) {
      const DType wanted = c.float32_output ? DType::f32 : activations;
      EXPECT_TRUE(actual.dtype() == wanted || c.op == Op::Argmax || c.op == Op::Cast)
          << c.name << ": a " << dtype_name(activations) << " input gave a " << dtype_name(actual.dtype())
          << " output";
      actual = kernels::cast(actual, DType::f32);
    }
    actual = actual.to(Device::cpu());
    const double tolerance =
        !half ? c.tolerance : (activations == DType::bf16 ? c.bf16_tolerance : c.bf16_tolerance / 4);
    EXPECT_TRUE(voxmamba::testing::close(actual, expected, tolerance))
        << op_name(c.op) << " / " << c.name << " on " << device.name()
        << (half ? std::string(" in ") + dtype_name(activations) : std::string());
  }
};

// Each op of ops.h has at least one of `cases`.
inline void expect_every_op_has_a_case(const std::vector<OpCase>& cases) {
  std::set<Op> covered;
  for (const OpCase& c : cases) covered.insert(c.op);
  for (int i = 0; i < static_cast<int>(Op::Count); ++i) {
    EXPECT_TRUE(covered.count(static_cast<Op>(i))) << "no test case for op " << op_name(static_cast<Op>(i));
  }
}

}  // namespace voxmamba::kernels::op_cases

// The four comparisons of a suite of op cases (a subclass of OpCaseTest): the CPU backend,
// and the GPU in float32, bfloat16 and float16, the GPU's skipping with the reason where
// there is none.
#define VOXMAMBA_OP_CASE_TESTS(Fixture)                                                     \
  TEST_P(Fixture, CpuMatchesReference) { expect_backend_matches_reference(Device::cpu()); } \
  TEST_P(Fixture, CudaMatchesReference) {                                                   \
    VOXMAMBA_REQUIRE_CUDA_DEVICE();                                                         \
    expect_backend_matches_reference(Device::cuda(0));                                      \
  }                                                                                         \
  TEST_P(Fixture, CudaBf16MatchesReference) {                                               \
    VOXMAMBA_REQUIRE_CUDA_DEVICE();                                                         \
    expect_backend_matches_reference(Device::cuda(0), DType::bf16);                         \
  }                                                                                         \
  TEST_P(Fixture, CudaF16MatchesReference) {                                                \
    VOXMAMBA_REQUIRE_CUDA_DEVICE();                                                         \
    expect_backend_matches_reference(Device::cuda(0), DType::f16);                          \
  }
