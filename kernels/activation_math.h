#pragma once
// Scalar definitions of the activations, shared by the reference and CPU kernels so that
// both compute the same formula (PyTorch's, for parity with the twin).
#include <cmath>

namespace voxmamba::kernels {

template <typename T> inline T gelu_exact(T x) {
  return T(0.5) * x * (T(1) + std::erf(x * T(0.70710678118654752440)));
}
template <typename T> inline T sigmoid(T x) { return T(1) / (T(1) + std::exp(-x)); }
template <typename T> inline T silu_of(T x) { return x * sigmoid(x); }
// PyTorch's softplus with beta 1 and threshold 20: linear above the threshold.
template <typename T> inline T softplus_of(T x) { return x > T(20) ? x : std::log1p(std::exp(x)); }
template <typename T> inline T leaky_relu_of(T x, T slope) { return x >= T(0) ? x : x * slope; }

}  // namespace voxmamba::kernels
