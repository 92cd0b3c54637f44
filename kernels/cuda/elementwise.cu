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

// The maps below are memory-bound. Each thread moves one vector of 16 bytes (8 bfloat16s)
// where every pointer allows it, and the remainder goes one element at a time: with 2-byte
// accesses these ops ran at about a third of the memory bandwidth (the base 128^3 forward
// spent 0.96 ms in adds whose bytes move in about 0.3 ms).
struct Gelu {
  __device__ float operator()(float v, float) const { return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f)); }
};
struct Silu {
  __device__ float operator()(float v, float) const { return silu_f32(v); }
};
struct LeakyRelu {
  float slope;
  __device__ float operator()(float v, float) const { return v >= 0.0f ? v : v * slope; }
};
struct Softplus {  // PyTorch's threshold
  __device__ float operator()(float v, float) const { return v > 20.0f ? v : log1pf(expf(v)); }
};
struct Add {
  __device__ float operator()(float u, float v) const { return u + v; }
};
struct Multiply {
  __device__ float operator()(float u, float v) const { return u * v; }
};

// y[i] = f(a[i], b[i]) (b may be null: unary maps ignore their second argument), over
// `vectors` vectors of V elements.
template <int V, typename T, typename F>
__global__ void map_kernel(const T* a, const T* b, T* y, std::int64_t vectors, F f) {
  VOXMAMBA_GRID_STRIDE(i, vectors) {
    Vec<T, V> u, v;
    u.load(a + i * V);
    if (b) v.load(b + i * V);
#pragma unroll
    for (int k = 0; k < V; ++k) u.v[k] = f(u.v[k], b ? v.v[k] : 0.0f);
    u.store(y + i * V);
  }
}

template <typename T, typename F> void launch_map(const T* a, const T* b, T* y, std::int64_t n, F f) {
  constexpr int V = 16 / sizeof(T);
  const bool aligned = is_aligned16(a) && is_aligned16(b) && is_aligned16(y);
  const std::int64_t vectors = aligned ? n / V : 0, done = vectors * V;
  if (vectors > 0) map_kernel<V><<<blocks_for(vectors), kThreads, 0, stream()>>>(a, b, y, vectors, f);
  if (done < n) {
    map_kernel<1><<<blocks_for(n - done), kThreads, 0, stream()>>>(a + done, b ? b + done : nullptr, y + done,
                                                                   n - done, f);
  }
}

template <typename F> Tensor unary(const Tensor& x, const char* op, F f) {
  require_cuda_float(x, op, "input");
  Tensor y = empty_like_device(x.shape(), x);
  with_float_type(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    launch_map<T>(ptr_as<T>(x), nullptr, mutable_ptr_as<T>(y), x.numel(), f);
  });
  check_launch(op);
  return y;
}

template <typename F> Tensor binary(const Tensor& a, const Tensor& b, const char* op, F f) {
  check_same_shape(a, b, op);
  require_cuda_float(a, op, "a");
  require_cuda_float(b, op, "b");
  require_same_dtype(a, b, op, "b");
  Tensor y = empty_like_device(a.shape(), a);
  with_float_type(a.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    launch_map<T>(ptr_as<T>(a), ptr_as<T>(b), mutable_ptr_as<T>(y), a.numel(), f);
  });
  check_launch(op);
  return y;
}

template <typename From, typename To> __global__ void cast_kernel(const From* x, To* y, std::int64_t n) {
  VOXMAMBA_GRID_STRIDE(i, n) { y[i] = from_f32<To>(to_f32(x[i])); }
}

// Rows of ca words of a then cb words of b, as one row of y: concatenation moves bytes, so
// it runs on the widest word that divides both rows (16 bytes for the decoder's 48 + 48
// channels, where element-at-a-time copies with two 64-bit divisions each cost 1.4 ms of the
// base 128^3 forward).
template <typename Word>
__global__ void concat_kernel(const Word* a, const Word* b, Word* y, std::int64_t rows, std::int64_t ca,
                              std::int64_t cb) {
  const std::int64_t c = ca + cb, n = rows * c;
  VOXMAMBA_GRID_STRIDE(i, n) {
    const std::int64_t row = i / c, word = i - row * c;
    y[i] = word < ca ? a[row * ca + word] : b[row * cb + word - ca];
  }
}

template <typename Word>
void launch_concat(const void* a, const void* b, void* y, std::int64_t rows, std::int64_t a_bytes, std::int64_t b_bytes) {
  const std::int64_t ca = a_bytes / sizeof(Word), cb = b_bytes / sizeof(Word);
  concat_kernel<Word><<<blocks_for(rows * (ca + cb)), kThreads, 0, stream()>>>(
      static_cast<const Word*>(a), static_cast<const Word*>(b), static_cast<Word*>(y), rows, ca, cb);
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

Tensor gelu(const Tensor& x) { return unary(x, "gelu", Gelu{}); }
Tensor silu(const Tensor& x) { return unary(x, "silu", Silu{}); }
Tensor leaky_relu(const Tensor& x, float slope) { return unary(x, "leaky_relu", LeakyRelu{slope}); }
Tensor softplus(const Tensor& x) { return unary(x, "softplus", Softplus{}); }
Tensor add(const Tensor& a, const Tensor& b) { return binary(a, b, "add", Add{}); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary(a, b, "mul", Multiply{}); }

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
      cast_kernel<From, To><<<blocks_for(x.numel()), kThreads, 0, stream()>>>(
          ptr_as<From>(x), mutable_ptr_as<To>(y), x.numel());
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
  if (y.numel() == 0) return y;
  const std::int64_t element = static_cast<std::int64_t>(dtype_size(a.dtype()));
  const std::int64_t a_bytes = a.dim(-1) * element, b_bytes = b.dim(-1) * element;
  const auto rows_of_words = [&](std::int64_t word) {
    return a_bytes % word == 0 && b_bytes % word == 0 && is_aligned(a.raw_data(), word) &&
           is_aligned(b.raw_data(), word) && is_aligned(y.raw_data(), word);
  };
  if (rows_of_words(16)) {
    launch_concat<uint4>(a.raw_data(), b.raw_data(), y.raw_data(), rows_of(a), a_bytes, b_bytes);
  } else if (rows_of_words(4)) {
    launch_concat<std::uint32_t>(a.raw_data(), b.raw_data(), y.raw_data(), rows_of(a), a_bytes, b_bytes);
  } else {
    launch_concat<std::uint16_t>(a.raw_data(), b.raw_data(), y.raw_data(), rows_of(a), a_bytes, b_bytes);
  }
  check_launch("concat_channels");
  return y;
}

Tensor softmax(const Tensor& x) {
  require_cuda_float(x, "softmax", "input");
  Tensor y = empty_like_device(x.shape(), x);
  with_float_type(x.dtype(), "softmax", [&](auto tag) {
    using T = decltype(tag);
    softmax_kernel<T><<<blocks_for(rows_of(x)), kThreads, 0, stream()>>>(ptr_as<T>(x), mutable_ptr_as<T>(y),
                                                                         rows_of(x), x.dim(-1));
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
    argmax_kernel<T><<<blocks_for(rows_of(x)), kThreads, 0, stream()>>>(
        ptr_as<T>(x), static_cast<std::int32_t*>(y.raw_data()), rows_of(x), x.dim(-1));
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
    flip_kernel<std::uint32_t><<<blocks_for(x.numel() * dtype_size(x.dtype()) / 4), kThreads, 0, stream()>>>(
        static_cast<const std::uint32_t*>(x.raw_data()), static_cast<std::uint32_t*>(y.raw_data()), g,
        voxel_bytes / 4);
  } else {
    flip_kernel<std::uint8_t><<<blocks_for(x.numel() * dtype_size(x.dtype())), kThreads, 0, stream()>>>(
        static_cast<const std::uint8_t*>(x.raw_data()), static_cast<std::uint8_t*>(y.raw_data()), g,
        voxel_bytes);
  }
  check_launch("flip");
  return y;
}

}  // namespace voxmamba::kernels::cuda
