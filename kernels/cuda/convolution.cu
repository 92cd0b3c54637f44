// Convolutions on channels-last volumes on the GPU, float32 or bfloat16 activations:
// - dense convs: cuDNN for bfloat16 (cudnn_conv.cu); im2col tiles and cuBLAS GEMMs for
//   float32 and for shapes cuDNN declines;
// - depthwise and deformable depthwise convs: direct kernels in which a thread owns one
//   output voxel and a vector of channels (8 bfloat16 or 4 float32 = 16 bytes), so each
//   trilinear corner is one 16-byte load and the tap's geometry (corner indices and
//   weights, shared by all channels: network.md) is computed once per vector;
// - the k2 s2 transposed conv: one GEMM and a scatter.
#include <algorithm>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/cudnn_conv.cuh"
#include "kernels/cuda/gemm.cuh"
#include "kernels/op_checks.h"

namespace voxmamba::kernels::cuda {
namespace {

#define VOXMAMBA_GRID_STRIDE(i, n)                                                             \
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < (n); \
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)

struct Geometry {
  std::int64_t N, D, H, W, C;       // input
  std::int64_t Do, Ho, Wo, Co;      // output
  int kernel, stride, padding, dilation;
};

Geometry geometry(const Shape& in, const Shape& out, const ConvParams& p) {
  return {in[0], in[1], in[2], in[3], in[4], out[1], out[2], out[3], out[4], p.kernel, p.stride, p.padding, p.dilation};
}

// V consecutive channels as floats. Vectors of 16 bytes load in one instruction.
template <typename T, int V> struct Vec {
  float v[V];
  __device__ __forceinline__ void load(const T* p) {
    if constexpr (sizeof(T) * V == 16) {
      const uint4 raw = *reinterpret_cast<const uint4*>(p);
      const T* parts = reinterpret_cast<const T*>(&raw);
#pragma unroll
      for (int k = 0; k < V; ++k) v[k] = to_f32(parts[k]);
    } else {
#pragma unroll
      for (int k = 0; k < V; ++k) v[k] = to_f32(p[k]);
    }
  }
  __device__ __forceinline__ void store(T* p) const {
    if constexpr (sizeof(T) * V == 16) {
      uint4 raw;
      T* parts = reinterpret_cast<T*>(&raw);
#pragma unroll
      for (int k = 0; k < V; ++k) parts[k] = from_f32<T>(v[k]);
      *reinterpret_cast<uint4*>(p) = raw;
    } else {
#pragma unroll
      for (int k = 0; k < V; ++k) p[k] = from_f32<T>(v[k]);
    }
  }
};

// The widest channel vector that divides C: 16 bytes when possible, else single channels.
template <typename T> int vector_width(std::int64_t channels) {
  constexpr int wide = 16 / static_cast<int>(sizeof(T));
  return channels % wide == 0 ? wide : 1;
}

// columns[v - v0, (tap * cin_group + ci)] for output voxels [v0, v0 + rows) and group g.
template <typename T>
__global__ void im2col_kernel(const T* x, T* columns, Geometry g, std::int64_t v0, std::int64_t rows,
                              std::int64_t cin_group, std::int64_t group) {
  const std::int64_t taps = static_cast<std::int64_t>(g.kernel) * g.kernel * g.kernel;
  const std::int64_t patch = taps * cin_group, total = rows * patch;
  VOXMAMBA_GRID_STRIDE(i, total) {
    const std::int64_t r = i / patch, k = i % patch, tap = k / cin_group, ci = k % cin_group;
    const std::int64_t v = v0 + r;
    const std::int64_t ow = v % g.Wo, oh = (v / g.Wo) % g.Ho, od = (v / (g.Wo * g.Ho)) % g.Do,
                       n = v / (g.Wo * g.Ho * g.Do);
    const int kd = static_cast<int>(tap / (g.kernel * g.kernel)), kh = static_cast<int>((tap / g.kernel) % g.kernel),
              kw = static_cast<int>(tap % g.kernel);
    const std::int64_t d = od * g.stride - g.padding + kd * g.dilation;
    const std::int64_t h = oh * g.stride - g.padding + kh * g.dilation;
    const std::int64_t w = ow * g.stride - g.padding + kw * g.dilation;
    const bool inside = d >= 0 && d < g.D && h >= 0 && h < g.H && w >= 0 && w < g.W;
    columns[i] = inside ? x[(((n * g.D + d) * g.H + h) * g.W + w) * g.C + group * cin_group + ci] : from_f32<T>(0.0f);
  }
}

template <typename T> __global__ void add_bias_kernel(T* y, const float* bias, std::int64_t total, std::int64_t c) {
  VOXMAMBA_GRID_STRIDE(i, total) { y[i] = from_f32<T>(to_f32(y[i]) + bias[i % c]); }
}

// One thread: output voxel v, channels [cv * V, cv * V + V).
template <typename T, int V>
__global__ void depthwise_kernel(const T* x, const float* weight, const float* bias, T* y, Geometry g) {
  const std::int64_t vectors = g.C / V, total = g.N * g.Do * g.Ho * g.Wo * vectors;
  VOXMAMBA_GRID_STRIDE(i, total) {
    const std::int64_t c0 = (i % vectors) * V, v = i / vectors;
    const std::int64_t ow = v % g.Wo, oh = (v / g.Wo) % g.Ho, od = (v / (g.Wo * g.Ho)) % g.Do,
                       n = v / (g.Wo * g.Ho * g.Do);
    Vec<T, V> acc;
#pragma unroll
    for (int k = 0; k < V; ++k) acc.v[k] = bias ? bias[c0 + k] : 0.0f;
    for (int kd = 0; kd < g.kernel; ++kd) {
      const std::int64_t d = od * g.stride - g.padding + kd * g.dilation;
      if (d < 0 || d >= g.D) continue;
      for (int kh = 0; kh < g.kernel; ++kh) {
        const std::int64_t h = oh * g.stride - g.padding + kh * g.dilation;
        if (h < 0 || h >= g.H) continue;
        for (int kw = 0; kw < g.kernel; ++kw) {
          const std::int64_t w = ow * g.stride - g.padding + kw * g.dilation;
          if (w < 0 || w >= g.W) continue;
          Vec<T, V> in;
          in.load(x + (((n * g.D + d) * g.H + h) * g.W + w) * g.C + c0);
          const float* tap_weight = weight + ((kd * g.kernel + kh) * g.kernel + kw) * g.C + c0;
#pragma unroll
          for (int k = 0; k < V; ++k) acc.v[k] += in.v[k] * tap_weight[k];
        }
      }
    }
    acc.store(y + i * V);
  }
}

struct DeformGeometry {
  std::int64_t N, D, H, W, C;
  int kernel, dilation;
};

// network.md's deformable depthwise conv: trilinear samples at p + dilation*t_k + offset,
// neighbours outside the volume read zero (also on axes of size 1).
template <typename T, int V>
__global__ void deform_kernel(const T* x, const T* offsets, const float* weight, const float* bias, T* y,
                              DeformGeometry g) {
  const std::int64_t vectors = g.C / V, total = g.N * g.D * g.H * g.W * vectors;
  const int taps = g.kernel * g.kernel * g.kernel, half = (g.kernel - 1) / 2;
  VOXMAMBA_GRID_STRIDE(i, total) {
    const std::int64_t c0 = (i % vectors) * V, p = i / vectors;
    const std::int64_t w = p % g.W, h = (p / g.W) % g.H, d = (p / (g.W * g.H)) % g.D, n = p / (g.W * g.H * g.D);
    const T* delta = offsets + p * 3 * taps;
    const T* xn = x + n * g.D * g.H * g.W * g.C + c0;
    Vec<T, V> acc;
#pragma unroll
    for (int k = 0; k < V; ++k) acc.v[k] = bias ? bias[c0 + k] : 0.0f;
    for (int k = 0; k < taps; ++k) {
      const int kd = k / (g.kernel * g.kernel), kh = (k / g.kernel) % g.kernel, kw = k % g.kernel;
      const float z = static_cast<float>(d + g.dilation * (kd - half)) + to_f32(delta[3 * k]);
      const float yy = static_cast<float>(h + g.dilation * (kh - half)) + to_f32(delta[3 * k + 1]);
      const float xx = static_cast<float>(w + g.dilation * (kw - half)) + to_f32(delta[3 * k + 2]);
      const float fz = floorf(z), fy = floorf(yy), fx = floorf(xx);
      const std::int64_t d0 = static_cast<std::int64_t>(fz), h0 = static_cast<std::int64_t>(fy),
                         w0 = static_cast<std::int64_t>(fx);
      const float tz = z - fz, ty = yy - fy, tx = xx - fx;
      float sample[V];
#pragma unroll
      for (int c = 0; c < V; ++c) sample[c] = 0.0f;
#pragma unroll
      for (int a = 0; a < 2; ++a) {
        const std::int64_t dd = d0 + a;
        if (dd < 0 || dd >= g.D) continue;
#pragma unroll
        for (int b = 0; b < 2; ++b) {
          const std::int64_t hh = h0 + b;
          if (hh < 0 || hh >= g.H) continue;
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const std::int64_t ww = w0 + e;
            if (ww < 0 || ww >= g.W) continue;
            const float corner = (a ? tz : 1 - tz) * (b ? ty : 1 - ty) * (e ? tx : 1 - tx);
            Vec<T, V> in;
            in.load(xn + ((dd * g.H + hh) * g.W + ww) * g.C);
#pragma unroll
            for (int c = 0; c < V; ++c) sample[c] += corner * in.v[c];
          }
        }
      }
      const float* tap_weight = weight + static_cast<std::int64_t>(k) * g.C + c0;
#pragma unroll
      for (int c = 0; c < V; ++c) acc.v[c] += tap_weight[c] * sample[c];
    }
    acc.store(y + i * V);
  }
}

template <typename T>
__global__ void scatter_blocks_kernel(const T* blocks, const float* bias, T* y, std::int64_t N, std::int64_t D,
                                      std::int64_t H, std::int64_t W, std::int64_t cout) {
  const std::int64_t total = N * D * H * W * 8 * cout;
  VOXMAMBA_GRID_STRIDE(i, total) {
    const std::int64_t c = i % cout, sub = (i / cout) % 8, v = i / (8 * cout);
    const std::int64_t w = v % W, h = (v / W) % H, d = (v / (W * H)) % D, n = v / (W * H * D);
    const std::int64_t od = 2 * d + (sub >> 2), oh = 2 * h + ((sub >> 1) & 1), ow = 2 * w + (sub & 1);
    y[(((n * 2 * D + od) * 2 * H + oh) * 2 * W + ow) * cout + c] = from_f32<T>(to_f32(blocks[i]) + (bias ? bias[c] : 0.0f));
  }
}

// Dense or grouped conv as im2col tiles and GEMMs, accumulated onto y (which holds the bias).
template <typename T> void im2col_conv3d(const Tensor& x, const Tensor& weight, Tensor& y, const ConvParams& p) {
  const Geometry g = geometry(x.shape(), y.shape(), p);
  const std::int64_t cin_group = g.C / p.groups, cout_group = g.Co / p.groups;
  const std::int64_t patch = static_cast<std::int64_t>(p.kernel) * p.kernel * p.kernel * cin_group;
  const std::int64_t voxels = g.N * g.Do * g.Ho * g.Wo;
  // Tiles of at most 64 Mi column entries bound the im2col buffer.
  const std::int64_t tile = std::max<std::int64_t>(1, std::min<std::int64_t>(voxels, (std::int64_t(64) << 20) / patch));
  Tensor columns = Tensor::empty({tile * patch}, x.dtype(), x.device());
  for (std::int64_t v0 = 0; v0 < voxels; v0 += tile) {
    const std::int64_t rows = std::min(tile, voxels - v0);
    for (std::int64_t group = 0; group < p.groups; ++group) {
      im2col_kernel<T><<<blocks_for(rows * patch), kThreads>>>(ptr_as<T>(x), mutable_ptr_as<T>(columns), g, v0, rows,
                                                               cin_group, group);
      check_launch("conv3d im2col");
      gemm(x.dtype(), columns.raw_data(), ptr_as<T>(weight) + group * cout_group,
           mutable_ptr_as<T>(y) + v0 * g.Co + group * cout_group, rows, cout_group, patch, patch, g.Co, g.Co, true);
    }
  }
}

}  // namespace

Tensor conv3d(const Tensor& x, const Tensor& weight, const Tensor& bias, const ConvParams& p) {
  const Shape out_shape = conv3d_output_shape(x, weight, bias, p);
  require_cuda_float(x, "conv3d", "input");
  require_cuda_float(weight, "conv3d", "weight");
  require_cuda_f32(bias, "conv3d", "bias");
  Tensor y = empty_like_device(out_shape, x);
  const Geometry g = geometry(x.shape(), out_shape, p);
  const bool depthwise = p.groups == g.C && p.groups == g.Co;
  if (depthwise) {
    require_cuda_f32(weight, "conv3d", "depthwise weight");
  } else {
    require_same_dtype(x, weight, "conv3d", "weight");
  }
  with_float_type(x.dtype(), "conv3d", [&](auto tag) {
    using T = decltype(tag);
    if (depthwise) {
      const int width = vector_width<T>(g.C);
      const std::int64_t work = y.numel() / width;
      if (width == 1) {
        depthwise_kernel<T, 1><<<blocks_for(work), kThreads>>>(ptr_as<T>(x), ptr(weight), ptr(bias), mutable_ptr_as<T>(y), g);
      } else {
        depthwise_kernel<T, 16 / sizeof(T)>
            <<<blocks_for(work), kThreads>>>(ptr_as<T>(x), ptr(weight), ptr(bias), mutable_ptr_as<T>(y), g);
      }
      check_launch("conv3d depthwise");
      return;
    }
    // cuDNN's tensor-core kernels want channel counts in multiples of 8; the stem and the
    // first decoder conv (one input channel) stay on im2col, where they are cheap anyway.
    const bool try_cudnn = std::is_same_v<T, bf16> && (g.C / p.groups) % 8 == 0 && (g.Co / p.groups) % 8 == 0;
    if (try_cudnn && cudnn_conv3d(x, weight, y, p)) {
      if (bias.defined()) {
        add_bias_kernel<T><<<blocks_for(y.numel()), kThreads>>>(mutable_ptr_as<T>(y), ptr(bias), y.numel(), g.Co);
        check_launch("conv3d bias");
      }
      return;
    }
    const std::int64_t voxels = y.numel() / g.Co;
    if (bias.defined()) {
      fill_rows_with_bias(x.dtype(), ptr(bias), y.raw_data(), voxels, g.Co);
    } else {
      check_cuda(cudaMemsetAsync(y.raw_data(), 0, y.bytes()), "conv3d zero output");
    }
    im2col_conv3d<T>(x, weight, y, p);
  });
  return y;
}

Tensor conv_transpose3d_k2s2(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  const Shape out_shape = conv_transpose3d_output_shape(x, weight, bias);
  require_cuda_float(x, "conv_transpose3d", "input");
  require_cuda_float(weight, "conv_transpose3d", "weight");
  require_same_dtype(x, weight, "conv_transpose3d", "weight");
  require_cuda_f32(bias, "conv_transpose3d", "bias");
  const std::int64_t voxels = x.numel() / x.dim(4), cout = out_shape[4];
  Tensor blocks = Tensor::empty({voxels, 8 * cout}, x.dtype(), x.device());
  gemm(x.dtype(), x.raw_data(), weight.raw_data(), blocks.raw_data(), voxels, 8 * cout, x.dim(4), x.dim(4), 8 * cout,
       8 * cout, false);
  Tensor y = empty_like_device(out_shape, x);
  with_float_type(x.dtype(), "conv_transpose3d", [&](auto tag) {
    using T = decltype(tag);
    scatter_blocks_kernel<T><<<blocks_for(blocks.numel()), kThreads>>>(
        ptr_as<T>(blocks), ptr(bias), mutable_ptr_as<T>(y), x.dim(0), x.dim(1), x.dim(2), x.dim(3), cout);
  });
  check_launch("conv_transpose3d scatter");
  return y;
}

Tensor deform_dwconv3d(const Tensor& x, const Tensor& offsets, const Tensor& weight, const Tensor& bias,
                       int kernel, int dilation) {
  check_deform_args(x, offsets, weight, bias, kernel, dilation);
  require_cuda_float(x, "deform_dwconv3d", "input");
  require_cuda_float(offsets, "deform_dwconv3d", "offsets");
  require_same_dtype(x, offsets, "deform_dwconv3d", "offsets");
  require_cuda_f32(weight, "deform_dwconv3d", "weight");
  require_cuda_f32(bias, "deform_dwconv3d", "bias");
  Tensor y = empty_like_device(x.shape(), x);
  const DeformGeometry g{x.dim(0), x.dim(1), x.dim(2), x.dim(3), x.dim(4), kernel, dilation};
  with_float_type(x.dtype(), "deform_dwconv3d", [&](auto tag) {
    using T = decltype(tag);
    const int width = vector_width<T>(g.C);
    const std::int64_t work = y.numel() / width;
    if (width == 1) {
      deform_kernel<T, 1><<<blocks_for(work), kThreads>>>(ptr_as<T>(x), ptr_as<T>(offsets), ptr(weight), ptr(bias),
                                                          mutable_ptr_as<T>(y), g);
    } else {
      deform_kernel<T, 16 / sizeof(T)><<<blocks_for(work), kThreads>>>(ptr_as<T>(x), ptr_as<T>(offsets), ptr(weight),
                                                                       ptr(bias), mutable_ptr_as<T>(y), g);
    }
  });
  check_launch("deform_dwconv3d");
  return y;
}

}  // namespace voxmamba::kernels::cuda
