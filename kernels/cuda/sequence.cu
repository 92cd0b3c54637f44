// Token reorder and restore and the causal conv1d over a volume's tokens on the GPU (ops.h).
// Orientations are applied by index (token_walk.cuh), never by copying.
#include <type_traits>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/token_walk.cuh"
#include "kernels/op_checks.h"

namespace voxmamba::kernels::cuda {
namespace {

template <typename T>
__global__ void permute_kernel(const T* x, T* y, std::int64_t N, std::int64_t L, std::int64_t F, TokenIndex index,
                               bool restore) {
  const std::int64_t total = N * L * F;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t f = i % F, row = i / F, n = row / L, position = row % L;
    const std::int64_t token_row = n * L + index(static_cast<int>(position));
    if (restore) {
      y[token_row * F + f] = x[i];
    } else {
      y[i] = x[token_row * F + f];
    }
  }
}

// One thread: V channels (16 bytes where E allows) of one position. The K taps walk the
// orientation from position - K + 1 with TokenWalker, so the slice order costs one division
// per thread instead of one per tap and channel. Index arithmetic is in Index: 32 bits where
// the host finds that the elements fit with room to spare (a 64-bit division costs dozens of
// instructions), and each tap's V weights are vector loads rather than V scalar ones (H200,
// base 128^3, float16, all causal convs of a forward: 0.94 -> 0.79 ms). Also measured and
// dropped: a thread sliding over 4 positions with the last 4 rows in registers (7 row loads
// for 4 outputs instead of 16): stage 0's convs took 68 to 83 us where these take 60 to 73,
// and the float16 forward 33.56 ms where it takes 33.48.
template <typename T, int V, typename Index>
__global__ void causal_conv1d_kernel(const T* __restrict__ x, const float* __restrict__ weight,
                                     const float* __restrict__ bias, T* __restrict__ y, Index N, Index L, Index E,
                                     int K, TokenIndex index, bool apply_silu) {
  const Index vectors = E / V, total = N * L * vectors;
  for (Index i = blockIdx.x * static_cast<Index>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<Index>(gridDim.x) * blockDim.x) {
    const Index e0 = (i % vectors) * V, row = i / vectors, n = row / L;
    const int position = static_cast<int>(row - n * L), first = max(0, position - K + 1);
    Vec<float, V> acc;
    if (bias) {
      acc.load(bias + e0);
    } else {
#pragma unroll
      for (int k = 0; k < V; ++k) acc.v[k] = 0.0f;
    }
    TokenWalker walker(index, first);
    int token = walker.token;
    for (int source = first; source <= position; ++source) {
      token = walker.token;
      Vec<T, V> in;
      in.load(x + (n * L + token) * E + e0);
      Vec<float, V> tap;
      tap.load(weight + (source - position + K - 1) * E + e0);
#pragma unroll
      for (int k = 0; k < V; ++k) acc.v[k] += tap.v[k] * in.v[k];
      walker.step();
    }
    Vec<T, V> out;
#pragma unroll
    for (int k = 0; k < V; ++k) out.v[k] = apply_silu ? silu_f32(acc.v[k]) : acc.v[k];
    out.store(y + (n * L + token) * E + e0);
  }
}

Tensor permute(const Tensor& x, TokenOrder order, const VolumeShape& volume, bool restore, const char* op) {
  check_sequence(x, volume, op);
  require_cuda_float(x, op, "input");
  Tensor y = empty_like_device(x.shape(), x);
  with_float_type(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    permute_kernel<T><<<blocks_for(x.numel()), kThreads, 0, stream()>>>(ptr_as<T>(x), mutable_ptr_as<T>(y),
                                                                        x.dim(0), x.dim(1), x.dim(2),
                                                                        token_index(order, volume), restore);
  });
  check_launch(op);
  return y;
}

}  // namespace

Tensor reorder_tokens(const Tensor& x, TokenOrder order, const VolumeShape& volume) {
  return permute(x, order, volume, false, "reorder_tokens");
}

Tensor restore_tokens(const Tensor& x, TokenOrder order, const VolumeShape& volume) {
  return permute(x, order, volume, true, "restore_tokens");
}

Tensor causal_conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias, TokenOrder order,
                     const VolumeShape& volume, bool apply_silu) {
  check_causal_conv1d_args(x, weight, bias, volume);
  require_cuda_float(x, "causal_conv1d", "input");
  require_cuda_f32(weight, "causal_conv1d", "weight");
  require_cuda_f32(bias, "causal_conv1d", "bias");
  Tensor y = empty_like_device(x.shape(), x);
  with_float_type(x.dtype(), "causal_conv1d", [&](auto tag) {
    using T = decltype(tag);
    const auto launch = [&](auto width) {
      constexpr int V = decltype(width)::value;
      const auto run = [&](auto index_type) {
        using Index = decltype(index_type);
        causal_conv1d_kernel<T, V, Index><<<blocks_for(x.numel() / V), kThreads, 0, stream()>>>(
            ptr_as<T>(x), ptr(weight), ptr(bias), mutable_ptr_as<T>(y), static_cast<Index>(x.dim(0)),
            static_cast<Index>(x.dim(1)), static_cast<Index>(x.dim(2)), static_cast<int>(weight.dim(0)),
            token_index(order, volume), apply_silu);
      };
      // Below 2^30 elements the grid-stride index stays below 2^31 even one stride past the end.
      if (x.numel() < (std::int64_t(1) << 30)) {
        run(std::int32_t{});
      } else {
        run(std::int64_t{});
      }
    };
    const bool aligned = is_aligned16(x.raw_data()) && is_aligned16(weight.raw_data()) &&
                         (!bias.defined() || is_aligned16(bias.raw_data()));
    if (aligned && vector_width<T>(x.dim(2)) > 1) {
      launch(std::integral_constant<int, 16 / sizeof(T)>{});
    } else {
      launch(std::integral_constant<int, 1>{});
    }
  });
  check_launch("causal_conv1d");
  return y;
}

}  // namespace voxmamba::kernels::cuda
