// Narrow linear maps (narrow_linear.cuh). Both kernels are bound by the bytes they move:
// - few outputs (the head: 48 channels into 3 classes at 128^3): a thread takes a row, reads
//   it in 16-byte vectors and keeps its outputs in registers; the weights, padded to four or
//   eight outputs with zeros, sit in shared memory, where every thread reads the same word.
// - few inputs (enc0's skip: 1 channel into 48 at 128^3): a thread writes one 16-byte vector
//   of a row's outputs from the row's inputs and the weights' matching columns.
// Sums are in float, the bias first.
#include <algorithm>
#include <cstdint>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/narrow_linear.cuh"

namespace voxmamba::kernels::cuda {
namespace {

constexpr std::int64_t kMaxFewOutputsIn =
    1024;  // its weights padded to 8 outputs fill 32 KB of shared memory

// Rows of `in` values into kQuads * 4 padded outputs, of which the first `out` are written.
template <typename T, typename Out, int kQuads>
__global__ void __launch_bounds__(kThreads)
    few_outputs_kernel(const T* __restrict__ x, const T* __restrict__ weight, const float* __restrict__ bias,
                       Out* __restrict__ y, std::int64_t rows, int in, int out) {
  extern __shared__ float4 padded_weight[];  // [in][kQuads]
  for (int i = threadIdx.x; i < in * kQuads; i += blockDim.x) {
    const int k = i / kQuads, first = i % kQuads * 4;
    float v[4];
#pragma unroll
    for (int o = 0; o < 4; ++o) v[o] = first + o < out ? to_f32(weight[k * out + first + o]) : 0.0f;
    padded_weight[i] = make_float4(v[0], v[1], v[2], v[3]);
  }
  __syncthreads();
  constexpr int kOut = 4 * kQuads, V = 16 / sizeof(T);
  float start[kOut];
#pragma unroll
  for (int o = 0; o < kOut; ++o) start[o] = bias && o < out ? bias[o] : 0.0f;
  VOXMAMBA_GRID_STRIDE(row, rows) {
    float acc[kOut];
#pragma unroll
    for (int o = 0; o < kOut; ++o) acc[o] = start[o];
    const T* input = x + row * in;
    for (int k = 0; k < in; k += V) {
      Vec<T, V> values;
      values.load(input + k);
#pragma unroll
      for (int c = 0; c < V; ++c) {
#pragma unroll
        for (int q = 0; q < kQuads; ++q) {
          const float4 w = padded_weight[(k + c) * kQuads + q];
          acc[4 * q] += values.v[c] * w.x, acc[4 * q + 1] += values.v[c] * w.y;
          acc[4 * q + 2] += values.v[c] * w.z, acc[4 * q + 3] += values.v[c] * w.w;
        }
      }
    }
#pragma unroll
    for (int o = 0; o < kOut; ++o) {
      if (o < out) y[row * out + o] = from_f32<Out>(acc[o]);
    }
  }
}

// Rows of `in` values (at most kNarrowInputs) into `out` outputs, V a thread.
template <typename T, typename Out, int V>
__global__ void few_inputs_kernel(const T* __restrict__ x, const T* __restrict__ weight,
                                  const float* __restrict__ bias, Out* __restrict__ y, std::int64_t rows,
                                  int in, int out) {
  const int row_vectors = out / V;
  VOXMAMBA_GRID_STRIDE(i, rows * row_vectors) {
    const std::int64_t row = i / row_vectors;
    const int first = static_cast<int>(i % row_vectors) * V;
    Vec<Out, V> acc;
#pragma unroll
    for (int c = 0; c < V; ++c) acc.v[c] = bias ? bias[first + c] : 0.0f;
    for (int k = 0; k < in; ++k) {
      const float value = to_f32(x[row * in + k]);
      Vec<T, V> w;
      w.load(weight + k * out + first);
#pragma unroll
      for (int c = 0; c < V; ++c) acc.v[c] += value * w.v[c];
    }
    acc.store(y + i * V);
  }
}

}  // namespace

bool narrow_linear(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& y) {
  const std::int64_t in = weight.dim(0), out = weight.dim(1);
  if (in == 0 || out == 0 || y.numel() == 0) return false;
  const std::int64_t rows = x.numel() / in;
  bool ran = false;
  with_float_type(x.dtype(), "linear", [&](auto tag) {
    using T = decltype(tag);
    const auto run = [&](auto output_tag) {
      using Out = decltype(output_tag);
      constexpr int kInVector = 16 / sizeof(T), kOutVector = 16 / sizeof(Out);
      if (out <= kNarrowOutputs && in % kInVector == 0 && in <= kMaxFewOutputsIn &&
          is_aligned16(x.raw_data())) {
        const auto launch = [&](auto quads) {
          constexpr int Q = decltype(quads)::value;
          const std::size_t shared = static_cast<std::size_t>(in) * Q * sizeof(float4);
          few_outputs_kernel<T, Out, Q><<<blocks_for(rows), kThreads, shared, stream()>>>(
              ptr_as<T>(x), ptr_as<T>(weight), ptr(bias), mutable_ptr_as<Out>(y), rows, static_cast<int>(in),
              static_cast<int>(out));
        };
        if (out <= 4) {
          launch(std::integral_constant<int, 1>{});
        } else {
          launch(std::integral_constant<int, 2>{});
        }
        ran = true;
      } else if (in <= kNarrowInputs && out % kOutVector == 0 && is_aligned16(y.raw_data()) &&
                 is_aligned16(weight.raw_data())) {
        few_inputs_kernel<T, Out, kOutVector>
            <<<blocks_for(rows * (out / kOutVector)), kThreads, 0, stream()>>>(
                ptr_as<T>(x), ptr_as<T>(weight), ptr(bias), mutable_ptr_as<Out>(y), rows,
                static_cast<int>(in), static_cast<int>(out));
        ran = true;
      }
    };
    if (y.dtype() == DType::f32) {
      run(float{});
    } else {
      run(T{});
    }
  });
  if (ran) check_launch("linear (narrow)");
  return ran;
}

}  // namespace voxmamba::kernels::cuda
