// Elementwise ops, dtype casts, channel concatenation and per-row softmax/argmax on the GPU,
// each templated on the activation type (float, bfloat16 or float16) and computing in float;
// and the mirroring flip, which moves voxels of any element type as words.
#include <cmath>
#include <cstdint>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/op_checks.h"

namespace voxmamba::kernels::cuda {
namespace {

enum class Unary { Gelu, Silu, LeakyRelu, Softplus };

template <Unary kind, typename T>
__global__ void unary_kernel(const T* x, T* y, std::int64_t n, float slope) {
  VOXMAMBA_GRID_STRIDE(i, n) {
    const float v = to_f32(x[i]);
    float r = v;
    if constexpr (kind == Unary::Gelu) r = 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
    if constexpr (kind == Unary::Silu) r = v / (1.0f + expf(-v));
    if constexpr (kind == Unary::LeakyRelu) r = v >= 0.0f ? v : v * slope;
    if constexpr (kind == Unary::Softplus) r = v > 20.0f ? v : log1pf(expf(v));  // PyTorch's threshold
    y[i] = from_f32<T>(r);
  }
}

template <Unary kind> Tensor unary(const Tensor& x, const char* op, float slope = 0.0f) {
  require_cuda_float(x, op, "input");
  Tensor y = empty_like_device(x.shape(), x);
  with_float_type(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    unary_kernel<kind, T><<<blocks_for(x.numel()), kThreads>>>(ptr_as<T>(x), mutable_ptr_as<T>(y), x.numel(), slope);
  });
  check_launch(op);
  return y;
}

template <bool kMultiply, typename T>
__global__ void binary_kernel(const T* a, const T* b, T* y, std::int64_t n) {
  VOXMAMBA_GRID_STRIDE(i, n) {
    const float u = to_f32(a[i]), v = to_f32(b[i]);
    y[i] = from_f32<T>(kMultiply ? u * v : u + v);
  }
}

template <bool kMultiply> Tensor binary(const Tensor& a, const Tensor& b, const char* op) {
  check_same_shape(a, b, op);
  require_cuda_float(a, op, "a");
  require_cuda_float(b, op, "b");
  require_same_dtype(a, b, op, "b");
  Tensor y = empty_like_device(a.shape(), a);
  with_float_type(a.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    binary_kernel<kMultiply, T>
        <<<blocks_for(a.numel()), kThreads>>>(ptr_as<T>(a), ptr_as<T>(b), mutable_ptr_as<T>(y), a.numel());
  });
  check_launch(op);
  return y;
}

template <typename From, typename To> __global__ void cast_kernel(const From* x, To* y, std::int64_t n) {
  VOXMAMBA_GRID_STRIDE(i, n) { y[i] = from_f32<To>(to_f32(x[i])); }
}

template <typename T>
__global__ void concat_kernel(const T* a, const T* b, T* y, std::int64_t rows, std::int64_t ca, std::int64_t cb) {
  const std::int64_t c = ca + cb, n = rows * c;
  VOXMAMBA_GRID_STRIDE(i, n) {
    const std::int64_t row = i / c, channel = i % c;
    y[i] = channel < ca ? a[row * ca + channel] : b[row * cb + channel - ca];
  }
}

template <typename T> __global__ void softmax_kernel(const T* x, T* y, std::int64_t rows, std::int64_t c) {
  const std::int64_t row = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (row >= rows) return;
  const T* in = x + row * c;
  T* out = y + row * c;
  float peak = to_f32(in[0]);
  for (std::int64_t k = 1; k < c; ++k) peak = fmaxf(peak, to_f32(in[k]));
  float total = 0.0f;
  for (std::int64_t k = 0; k < c; ++k) total += expf(to_f32(in[k]) - peak);
  for (std::int64_t k = 0; k < c; ++k) out[k] = from_f32<T>(expf(to_f32(in[k]) - peak) / total);
}

template <typename T> __global__ void argmax_kernel(const T* x, std::int32_t* y, std::int64_t rows, std::int64_t c) {
  const std::int64_t row = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (row >= rows) return;
  const T* in = x + row * c;
  std::int64_t best = 0;
  float best_value = to_f32(in[0]);
  for (std::int64_t k = 1; k < c; ++k) {
    const float value = to_f32(in[k]);
    if (value > best_value) best = k, best_value = value;  // first maximum wins, as on the CPU
  }
  y[row] = static_cast<std::int32_t>(best);
}

std::int64_t rows_of(const Tensor& x) { return x.dim(-1) == 0 ? 0 : x.numel() / x.dim(-1); }

// y[n, d, h, w] = x at the mirrored voxel, one word of a voxel per thread.
template <typename Word>
__global__ void flip_kernel(const Word* x, Word* y, FlipGeometry g, std::int64_t words_per_voxel) {
  const std::int64_t total = g.batch * g.depth * g.height * g.width * words_per_voxel;
  VOXMAMBA_GRID_STRIDE(i, total) {
    const std::int64_t word = i % words_per_voxel, v = i / words_per_voxel;
    const std::int64_t w = v % g.width, h = (v / g.width) % g.height, d = (v / (g.width * g.height)) % g.depth,
                       n = v / (g.width * g.height * g.depth);
    const std::int64_t source_w = g.flip_w ? g.width - 1 - w : w, source_h = g.flip_h ? g.height - 1 - h : h,
                       source_d = g.flip_d ? g.depth - 1 - d : d;
    y[i] = x[(((n * g.depth + source_d) * g.height + source_h) * g.width + source_w) * words_per_voxel + word];
  }
}

}  // namespace

Tensor gelu(const Tensor& x) { return unary<Unary::Gelu>(x, "gelu"); }
Tensor silu(const Tensor& x) { return unary<Unary::Silu>(x, "silu"); }
Tensor leaky_relu(const Tensor& x, float slope) { return unary<Unary::LeakyRelu>(x, "leaky_relu", slope); }
Tensor softplus(const Tensor& x) { return unary<Unary::Softplus>(x, "softplus"); }
Tensor add(const Tensor& a, const Tensor& b) { return binary<false>(a, b, "add"); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary<true>(a, b, "mul"); }

Tensor cast(const Tensor& x, DType dtype) {
  require_cuda_float(x, "cast", "input");
  if (dtype != DType::f32 && dtype != DType::bf16 && dtype != DType::f16) {
    throw Error(std::string("cast: float32, bfloat16 or float16 only, not ") + dtype_name(dtype));
  }
  if (x.dtype() == dtype) return x;
  Tensor y = empty_like_device(x.shape(), x, dtype);
  with_float_type(x.dtype(), "cast", [&](auto from_tag) {
    using From = decltype(from_tag);
    with_float_type(dtype, "cast", [&](auto to_tag) {
      using To = decltype(to_tag);
      cast_kernel<From, To><<<blocks_for(x.numel()), kThreads>>>(ptr_as<From>(x), mutable_ptr_as<To>(y), x.numel());
    });
  });
  check_launch("cast");
  return y;
}

Tensor concat_channels(const Tensor& a, const Tensor& b) {
  if (a.rank() != b.rank() || rows_of(a) != rows_of(b)) {
    throw Error("concat_channels: shapes " + shape_string(a.shape()) + " and " + shape_string(b.shape()) +
                " differ outside the last axis");
  }
  require_cuda_float(a, "concat_channels", "a");
  require_cuda_float(b, "concat_channels", "b");
  require_same_dtype(a, b, "concat_channels", "b");
  Shape shape = a.shape();
  shape.back() = a.dim(-1) + b.dim(-1);
  Tensor y = empty_like_device(shape, a);
  with_float_type(a.dtype(), "concat_channels", [&](auto tag) {
    using T = decltype(tag);
    concat_kernel<T><<<blocks_for(y.numel()), kThreads>>>(ptr_as<T>(a), ptr_as<T>(b), mutable_ptr_as<T>(y), rows_of(a),
                                                          a.dim(-1), b.dim(-1));
  });
  check_launch("concat_channels");
  return y;
}

Tensor softmax(const Tensor& x) {
  require_cuda_float(x, "softmax", "input");
  Tensor y = empty_like_device(x.shape(), x);
  with_float_type(x.dtype(), "softmax", [&](auto tag) {
    using T = decltype(tag);
    softmax_kernel<T><<<blocks_for(rows_of(x)), kThreads>>>(ptr_as<T>(x), mutable_ptr_as<T>(y), rows_of(x), x.dim(-1));
  });
  check_launch("softmax");
  return y;
}

Tensor argmax(const Tensor& x) {
  require_cuda_float(x, "argmax", "input");
  Shape shape = x.shape();
  shape.pop_back();
  Tensor y = empty_like_device(shape, x, DType::i32);
  with_float_type(x.dtype(), "argmax", [&](auto tag) {
    using T = decltype(tag);
    argmax_kernel<T><<<blocks_for(rows_of(x)), kThreads>>>(ptr_as<T>(x), static_cast<std::int32_t*>(y.raw_data()),
                                                           rows_of(x), x.dim(-1));
  });
  check_launch("argmax");
  return y;
}

Tensor flip(const Tensor& x, int axis_mask) {
  const FlipGeometry g = check_flip_args(x, axis_mask);
  if (x.device().is_cpu()) throw Error("flip: expects a GPU tensor here");
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (y.numel() == 0) return y;
  const std::int64_t voxel_bytes = g.channels * static_cast<std::int64_t>(dtype_size(x.dtype()));
  if (voxel_bytes % 4 == 0) {
    flip_kernel<std::uint32_t><<<blocks_for(x.numel() * dtype_size(x.dtype()) / 4), kThreads>>>(
        static_cast<const std::uint32_t*>(x.raw_data()), static_cast<std::uint32_t*>(y.raw_data()), g, voxel_bytes / 4);
  } else {
    flip_kernel<std::uint8_t><<<blocks_for(x.numel() * dtype_size(x.dtype())), kThreads>>>(
        static_cast<const std::uint8_t*>(x.raw_data()), static_cast<std::uint8_t*>(y.raw_data()), g, voxel_bytes);
  }
  check_launch("flip");
  return y;
}

}  // namespace voxmamba::kernels::cuda
