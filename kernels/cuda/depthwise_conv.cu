// The depthwise conv on channels-last volumes on the GPU: a direct kernel in which a thread owns
// one output voxel (or a row of them along w) and a vector of channels.
#include <algorithm>
#include <type_traits>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/depthwise_conv.cuh"

namespace voxmamba::kernels::cuda {
namespace {

// One thread: output voxel v, channels [c0, c0 + V). Index arithmetic is 32-bit within a
// sample (the host checks the sizes), and K, when it is a template argument (the network's 3,
// 5 and 7; 0: g.kernel), unrolls the taps: with 64-bit indices and runtime loops the kernel
// was bound by instruction issue (the offset heads' 3^3 convs took 1.1 ms of a base 128^3
// forward, whose bytes move in about 0.1 ms).
template <typename T, int V, int K>
__global__ void depthwise_kernel(const T* x, const float* weight, const float* bias, T* y, ConvGeometry g) {
  const int kernel = K > 0 ? K : g.kernel;
  const int C = static_cast<int>(g.C), D = static_cast<int>(g.D), H = static_cast<int>(g.H),
            W = static_cast<int>(g.W), Ho = static_cast<int>(g.Ho), Wo = static_cast<int>(g.Wo);
  const int vectors = C / V, per_sample = static_cast<int>(g.Do) * Ho * Wo * vectors;
  VOXMAMBA_GRID_STRIDE(i, g.N * per_sample) {
    const std::int64_t n = i / per_sample;
    int r = static_cast<int>(i - n * per_sample);
    const int c0 = (r % vectors) * V;
    r /= vectors;
    const int ow = r % Wo, oh = r / Wo % Ho, od = r / (Wo * Ho);
    const int d0 = od * g.stride - g.padding, h0 = oh * g.stride - g.padding, w0 = ow * g.stride - g.padding;
    const T* xn = x + n * (static_cast<std::int64_t>(D) * H * W * C) + c0;
    Vec<T, V> acc;
#pragma unroll
    for (int k = 0; k < V; ++k) acc.v[k] = bias ? bias[c0 + k] : 0.0f;
#pragma unroll
    for (int kd = 0; kd < kernel; ++kd) {
      const int d = d0 + kd * g.dilation;
      if (d < 0 || d >= D) continue;
#pragma unroll
      for (int kh = 0; kh < kernel; ++kh) {
        const int h = h0 + kh * g.dilation;
        if (h < 0 || h >= H) continue;
        const T* row = xn + (d * H + h) * W * C;
#pragma unroll
        for (int kw = 0; kw < kernel; ++kw) {
          const int w = w0 + kw * g.dilation;
          if (w < 0 || w >= W) continue;
          Vec<T, V> in;
          in.load(row + w * C);
          Vec<float, V> tap;  // 16-byte loads when V > 1: C is a multiple of V
          tap.load(weight + ((kd * kernel + kh) * kernel + kw) * C + c0);
#pragma unroll
          for (int k = 0; k < V; ++k) acc.v[k] += in.v[k] * tap.v[k];
        }
      }
    }
    acc.store(y + i * V);
  }
}

// depthwise_kernel for stride 1 and dilation 1 (the offset heads' 3^3 convs, the plain 5^3
// ones): a thread computes R consecutive output voxels along w, so that each input row's
// R + K - 1 values and each tap's weights are loaded once for all of them, where one voxel a
// thread loaded K inputs and K weight vectors per row for K products. H200, base 128^3 fp16
// (ncu): the 16 offset-head convs 0.69 ms before, 0.44 ms with R = 4 (stage 0: 116 -> 73 us).
template <typename T, int V, int K, int R>
__global__ void depthwise_rows_kernel(const T* __restrict__ x, const float* __restrict__ weight,
                                      const float* __restrict__ bias, T* __restrict__ y, ConvGeometry g) {
  const int C = static_cast<int>(g.C), D = static_cast<int>(g.D), H = static_cast<int>(g.H),
            W = static_cast<int>(g.W), Ho = static_cast<int>(g.Ho), Wo = static_cast<int>(g.Wo);
  const int vectors = C / V, w_blocks = (Wo + R - 1) / R,
            per_sample = static_cast<int>(g.Do) * Ho * w_blocks * vectors;
  VOXMAMBA_GRID_STRIDE(i, g.N * per_sample) {
    const std::int64_t n = i / per_sample;
    int r = static_cast<int>(i - n * per_sample);
    const int c0 = (r % vectors) * V;
    r /= vectors;
    const int ow0 = (r % w_blocks) * R, oh = r / w_blocks % Ho, od = r / (w_blocks * Ho);
    const int d0 = od - g.padding, h0 = oh - g.padding, w0 = ow0 - g.padding;
    const T* xn = x + n * (static_cast<std::int64_t>(D) * H * W * C) + c0;
    float acc[R][V];
#pragma unroll
    for (int o = 0; o < R; ++o) {
#pragma unroll
      for (int k = 0; k < V; ++k) acc[o][k] = bias ? bias[c0 + k] : 0.0f;
    }
#pragma unroll
    for (int kd = 0; kd < K; ++kd) {
      const int d = d0 + kd;
      if (d < 0 || d >= D) continue;
#pragma unroll
      for (int kh = 0; kh < K; ++kh) {
        const int h = h0 + kh;
        if (h < 0 || h >= H) continue;
        const T* row = xn + (d * H + h) * W * C;
        Vec<T, V> window[R + K - 1];  // inputs w0 .. w0 + R + K - 2, zero outside the volume
#pragma unroll
        for (int j = 0; j < R + K - 1; ++j) {
          const int w = w0 + j;
          if (w >= 0 && w < W) {
            window[j].load(row + w * C);
          } else {
#pragma unroll
            for (int k = 0; k < V; ++k) window[j].v[k] = 0.0f;
          }
        }
#pragma unroll
        for (int kw = 0; kw < K; ++kw) {
          Vec<float, V> tap;
          tap.load(weight + ((kd * K + kh) * K + kw) * C + c0);
#pragma unroll
          for (int o = 0; o < R; ++o) {
#pragma unroll
            for (int k = 0; k < V; ++k) acc[o][k] += window[o + kw].v[k] * tap.v[k];
          }
        }
      }
    }
    const std::int64_t out_row = ((n * g.Do + od) * Ho + oh) * static_cast<std::int64_t>(Wo);
#pragma unroll
    for (int o = 0; o < R; ++o) {
      if (ow0 + o >= Wo) break;
      Vec<T, V> out;
#pragma unroll
      for (int k = 0; k < V; ++k) out.v[k] = acc[o][k];
      out.store(y + (out_row + ow0 + o) * C + c0);
    }
  }
}

}  // namespace

void depthwise_conv3d(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& y,
                      const ConvGeometry& g) {
  if (std::max(x.numel(), y.numel()) / std::max<std::int64_t>(1, g.N) >= (std::int64_t(1) << 31)) {
    throw Error("conv3d: a depthwise conv sample of " + shape_string(x.shape()) + " or " +
                shape_string(y.shape()) + " has 2^31 elements or more");
  }
  if (y.numel() == 0) return;
  with_float_type(x.dtype(), "conv3d", [&](auto tag) {
    using T = decltype(tag);
    const auto launch = [&](auto width) {
      constexpr int V = decltype(width)::value;
      const auto run = [&](auto taps) {
        depthwise_kernel<T, V, decltype(taps)::value><<<blocks_for(y.numel() / V), kThreads, 0, stream()>>>(
            ptr_as<T>(x), ptr(weight), ptr(bias), mutable_ptr_as<T>(y), g);
      };
      constexpr int kRows = 4;  // output voxels a thread along w
      const auto run_rows = [&](auto taps) {
        constexpr int K = decltype(taps)::value;
        const std::int64_t threads = g.N * g.Do * g.Ho * ((g.Wo + kRows - 1) / kRows) * (g.C / V);
        depthwise_rows_kernel<T, V, K, kRows><<<blocks_for(threads), kThreads, 0, stream()>>>(
            ptr_as<T>(x), ptr(weight), ptr(bias), mutable_ptr_as<T>(y), g);
      };
      const bool rows = g.stride == 1 && g.dilation == 1;
      if (rows && g.kernel == 3) {
        run_rows(std::integral_constant<int, 3>{});
      } else if (rows && g.kernel == 5) {
        run_rows(std::integral_constant<int, 5>{});
      } else if (g.kernel == 3) {
        run(std::integral_constant<int, 3>{});
      } else if (g.kernel == 5) {
        run(std::integral_constant<int, 5>{});
      } else if (g.kernel == 7) {
        run(std::integral_constant<int, 7>{});
      } else {
        run(std::integral_constant<int, 0>{});
      }
    };
    if (vector_width<T>(g.C) == 1) {
      launch(std::integral_constant<int, 1>{});
    } else {
      launch(std::integral_constant<int, 16 / sizeof(T)>{});
    }
    check_launch("conv3d depthwise");
  });
}

}  // namespace voxmamba::kernels::cuda
