// Narrow linear maps (narrow_linear.cuh). Both kernels are bound by the bytes they move:
// - few outputs (the head: 48 channels into 3 classes at 128^3): a thread takes a row, reads
//   it in 16-byte vectors and keeps its four outputs in registers; the weights, padded to
//   four outputs with zeros, sit in shared memory, where every thread reads the same word.
// - few inputs (enc0's skip: 1 channel into 48 at 128^3): a thread writes one 16-byte vector
//   of a row's outputs from the row's inputs and the weights' matching columns.
// Sums are in float, the bias first.
// H200, base 128^3, fp16 (ncu): the head 261 -> 69 us (cuBLAS ran it as two align1 GEMMs
// after a bias pass), enc0's skip 166 -> 66 us. Eight outputs (the Mamba blocks' dt inputs,
// 96 and 192 channels into 8) were slower than cuBLAS, 31-34 against 21-24 us at 64^3 and
// 11 against 6 us at 32^3: a thread's serial walk over a wide row costs more there than
// cuBLAS's tiles waste.
#include <cstdint>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/narrow_linear.cuh"

namespace voxmamba::kernels::cuda {
namespace {

constexpr std::int64_t kMaxFewOutputsIn = 2048;  // 32 KB of padded weights in shared memory

// Rows of `in` values into `out` (at most 4) outputs.
template <typename T, typename Out>
__global__ void __launch_bounds__(kThreads)
    few_outputs_kernel(const T* __restrict__ x, const T* __restrict__ weight, const float* __restrict__ bias,
                       Out* __restrict__ y, std::int64_t rows, int in, int out) {
  extern __shared__ float4 padded_weight[];  // [in]: a row's weights, zero past `out`
  for (int k = threadIdx.x; k < in; k += blockDim.x) {
    float w[4];
#pragma unroll
    for (int o = 0; o < 4; ++o) w[o] = o < out ? to_f32(weight[k * out + o]) : 0.0f;
    padded_weight[k] = make_float4(w[0], w[1], w[2], w[3]);
  }
  __syncthreads();
  constexpr int V = 16 / sizeof(T);
  float start[4];
#pragma unroll
  for (int o = 0; o < 4; ++o) start[o] = bias && o < out ? bias[o] : 0.0f;
  VOXMAMBA_GRID_STRIDE(row, rows) {
    float acc[4] = {start[0], start[1], start[2], start[3]};
    const T* input = x + row * in;
    for (int k = 0; k < in; k += V) {
      Vec<T, V> values;
      values.load(input + k);
#pragma unroll
      for (int c = 0; c < V; ++c) {
        const float4 w = padded_weight[k + c];
        acc[0] += values.v[c] * w.x, acc[1] += values.v[c] * w.y;
        acc[2] += values.v[c] * w.z, acc[3] += values.v[c] * w.w;
      }
    }
#pragma unroll
    for (int o = 0; o < 4; ++o) {
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
        few_outputs_kernel<T, Out><<<blocks_for(rows), kThreads, in * sizeof(float4), stream()>>>(
            ptr_as<T>(x), ptr_as<T>(weight), ptr(bias), mutable_ptr_as<Out>(y), rows, static_cast<int>(in),
            static_cast<int>(out));
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
