#pragma once
// Helpers shared by the tests: seeded random tensors, comparisons that report where
// two tensors differ, and the message of an Error a call throws.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>

#include "core/error.h"
#include "core/tensor.h"

namespace voxmamba::testing {

inline Tensor random_tensor(const Shape& shape, std::uint64_t seed, float low = -1.0f, float high = 1.0f) {
  Tensor t = Tensor::empty(shape);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(low, high);
  for (std::int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = dist(rng);
  return t;
}

struct Difference {
  double max_abs = 0, max_reference = 0, nmse = 0;
};

inline Difference compare(const Tensor& actual, const Tensor& reference) {
  Difference d;
  double error_sq = 0, ref_sq = 0;
  for (std::int64_t i = 0; i < reference.numel(); ++i) {
    const double a = actual.data<float>()[i], r = reference.data<float>()[i];
    d.max_abs = std::max(d.max_abs, std::abs(a - r));
    d.max_reference = std::max(d.max_reference, std::abs(r));
    error_sq += (a - r) * (a - r);
    ref_sq += r * r;
  }
  d.nmse = ref_sq > 0 ? error_sq / ref_sq : error_sq;
  return d;
}

// Same shape, and max |a - r| <= tolerance * max(1, max |r|).
inline ::testing::AssertionResult close(const Tensor& actual, const Tensor& reference, double tolerance) {
  if (actual.shape() != reference.shape()) {
    return ::testing::AssertionFailure() << "shape " << shape_string(actual.shape()) << " vs reference "
                                         << shape_string(reference.shape());
  }
  const Difference d = compare(actual, reference);
  for (std::int64_t i = 0; i < actual.numel(); ++i) {
    if (!std::isfinite(actual.data<float>()[i])) return ::testing::AssertionFailure() << "non-finite value at " << i;
  }
  if (d.max_abs <= tolerance * std::max(1.0, d.max_reference)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "max |difference| " << d.max_abs << " (max |reference| "
                                       << d.max_reference << ", nmse " << d.nmse << ", tolerance " << tolerance
                                       << ")";
}

// Same shape, type and bytes, wherever the two tensors live.
inline bool bit_identical(const Tensor& a, const Tensor& b) {
  const Tensor x = a.to(Device::cpu()), y = b.to(Device::cpu());
  return x.shape() == y.shape() && x.dtype() == y.dtype() &&
         std::memcmp(x.raw_data(), y.raw_data(), x.bytes()) == 0;
}

// What the Error that `f` throws says, or "" when it throws none.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

}  // namespace voxmamba::testing
