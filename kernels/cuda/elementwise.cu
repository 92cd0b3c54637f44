// Elementwise ops, channel concatenation and per-row softmax/argmax on the GPU.
#include <cmath>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/op_checks.h"

namespace voxmamba::kernels::cuda {
namespace {

enum class Unary { Gelu, Silu, LeakyRelu, Softplus };

template <Unary kind>
__global__ void unary_kernel(const float* x, float* y, std::int64_t n, float slope) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const float v = x[i];
    if constexpr (kind == Unary::Gelu) y[i] = 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
    if constexpr (kind == Unary::Silu) y[i] = v / (1.0f + expf(-v));
    if constexpr (kind == Unary::LeakyRelu) y[i] = v >= 0.0f ? v : v * slope;
    if constexpr (kind == Unary::Softplus) y[i] = v > 20.0f ? v : log1pf(expf(v));  // PyTorch's threshold
  }
}

template <Unary kind> Tensor unary(const Tensor& x, const char* op, float slope = 0.0f) {
  require_cuda_f32(x, op, "input");
  Tensor y = empty_like_device(x.shape(), x);
  unary_kernel<kind><<<blocks_for(x.numel()), kThreads>>>(ptr(x), mutable_ptr(y), x.numel(), slope);
  check_launch(op);
  return y;
}

template <bool kMultiply>
__global__ void binary_kernel(const float* a, const float* b, float* y, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    y[i] = kMultiply ? a[i] * b[i] : a[i] + b[i];
  }
}

template <bool kMultiply> Tensor binary(const Tensor& a, const Tensor& b, const char* op) {
  check_same_shape(a, b, op);
  require_cuda_f32(a, op, "a");
  require_cuda_f32(b, op, "b");
  Tensor y = empty_like_device(a.shape(), a);
  binary_kernel<kMultiply><<<blocks_for(a.numel()), kThreads>>>(ptr(a), ptr(b), mutable_ptr(y), a.numel());
  check_launch(op);
  return y;
}

__global__ void concat_kernel(const float* a, const float* b, float* y, std::int64_t rows, std::int64_t ca,
                              std::int64_t cb) {
  const std::int64_t c = ca + cb, n = rows * c;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t row = i / c, channel = i % c;
    y[i] = channel < ca ? a[row * ca + channel] : b[row * cb + channel - ca];
  }
}

__global__ void softmax_kernel(const float* x, float* y, std::int64_t rows, std::int64_t c) {
  const std::int64_t row = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (row >= rows) return;
  const float* in = x + row * c;
  float* out = y + row * c;
  float peak = in[0];
  for (std::int64_t k = 1; k < c; ++k) peak = fmaxf(peak, in[k]);
  float total = 0.0f;
  for (std::int64_t k = 0; k < c; ++k) total += (out[k] = expf(in[k] - peak));
  for (std::int64_t k = 0; k < c; ++k) out[k] /= total;
}

__global__ void argmax_kernel(const float* x, std::int32_t* y, std::int64_t rows, std::int64_t c) {
  const std::int64_t row = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (row >= rows) return;
  const float* in = x + row * c;
  std::int64_t best = 0;
  for (std::int64_t k = 1; k < c; ++k) {
    if (in[k] > in[best]) best = k;  // first maximum wins, as on the CPU
  }
  y[row] = static_cast<std::int32_t>(best);
}

std::int64_t rows_of(const Tensor& x) { return x.dim(-1) == 0 ? 0 : x.numel() / x.dim(-1); }

}  // namespace

Tensor gelu(const Tensor& x) { return unary<Unary::Gelu>(x, "gelu"); }
Tensor silu(const Tensor& x) { return unary<Unary::Silu>(x, "silu"); }
Tensor leaky_relu(const Tensor& x, float slope) { return unary<Unary::LeakyRelu>(x, "leaky_relu", slope); }
Tensor softplus(const Tensor& x) { return unary<Unary::Softplus>(x, "softplus"); }
Tensor add(const Tensor& a, const Tensor& b) { return binary<false>(a, b, "add"); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary<true>(a, b, "mul"); }

Tensor concat_channels(const Tensor& a, const Tensor& b) {
  if (a.rank() != b.rank() || rows_of(a) != rows_of(b)) {
    throw Error("concat_channels: shapes " + shape_string(a.shape()) + " and " + shape_string(b.shape()) +
                " differ outside the last axis");
  }
  require_cuda_f32(a, "concat_channels", "a");
  require_cuda_f32(b, "concat_channels", "b");
  Shape shape = a.shape();
  shape.back() = a.dim(-1) + b.dim(-1);
  Tensor y = empty_like_device(shape, a);
  concat_kernel<<<blocks_for(y.numel()), kThreads>>>(ptr(a), ptr(b), mutable_ptr(y), rows_of(a), a.dim(-1),
                                                      b.dim(-1));
  check_launch("concat_channels");
  return y;
}

Tensor softmax(const Tensor& x) {
  require_cuda_f32(x, "softmax", "input");
  Tensor y = empty_like_device(x.shape(), x);
  softmax_kernel<<<blocks_for(rows_of(x)), kThreads>>>(ptr(x), mutable_ptr(y), rows_of(x), x.dim(-1));
  check_launch("softmax");
  return y;
}

Tensor argmax(const Tensor& x) {
  require_cuda_f32(x, "argmax", "input");
  Shape shape = x.shape();
  shape.pop_back();
  Tensor y = empty_like_device(shape, x, DType::i32);
  argmax_kernel<<<blocks_for(rows_of(x)), kThreads>>>(ptr(x), static_cast<std::int32_t*>(y.raw_data()),
                                                      rows_of(x), x.dim(-1));
  check_launch("argmax");
  return y;
}

}  // namespace voxmamba::kernels::cuda
