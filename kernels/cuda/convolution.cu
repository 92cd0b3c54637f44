// Convolutions on channels-last volumes on the GPU: dense/grouped convs as im2col tiles and
// cuBLAS GEMMs, depthwise and deformable depthwise convs as direct kernels (one thread per
// output voxel and channel, channels fastest so neighbouring threads read neighbouring
// memory), the k2 s2 transposed conv as one GEMM and a scatter.
#include <algorithm>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/gemm.cuh"
#include "kernels/op_checks.h"

namespace voxmamba::kernels::cuda {
namespace {

struct Geometry {
  std::int64_t N, D, H, W, C;       // input
  std::int64_t Do, Ho, Wo, Co;      // output
  int kernel, stride, padding, dilation;
};

Geometry geometry(const Shape& in, const Shape& out, const ConvParams& p) {
  return {in[0], in[1], in[2], in[3], in[4], out[1], out[2], out[3], out[4], p.kernel, p.stride, p.padding, p.dilation};
}

// columns[v - v0, (tap * cin_group + ci)] for output voxels [v0, v0 + rows) and group g.
__global__ void im2col_kernel(const float* x, float* columns, Geometry g, std::int64_t v0, std::int64_t rows,
                              std::int64_t cin_group, std::int64_t group) {
  const std::int64_t taps = static_cast<std::int64_t>(g.kernel) * g.kernel * g.kernel;
  const std::int64_t patch = taps * cin_group, total = rows * patch;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
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
    columns[i] = inside ? x[(((n * g.D + d) * g.H + h) * g.W + w) * g.C + group * cin_group + ci] : 0.0f;
  }
}

__global__ void fill_bias_kernel(const float* bias, float* y, std::int64_t rows, std::int64_t c) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < rows * c;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    y[i] = bias ? bias[i % c] : 0.0f;
  }
}

__global__ void depthwise_kernel(const float* x, const float* weight, const float* bias, float* y, Geometry g) {
  const std::int64_t total = g.N * g.Do * g.Ho * g.Wo * g.C;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t c = i % g.C, v = i / g.C;
    const std::int64_t ow = v % g.Wo, oh = (v / g.Wo) % g.Ho, od = (v / (g.Wo * g.Ho)) % g.Do,
                       n = v / (g.Wo * g.Ho * g.Do);
    float acc = bias ? bias[c] : 0.0f;
    for (int kd = 0; kd < g.kernel; ++kd) {
      const std::int64_t d = od * g.stride - g.padding + kd * g.dilation;
      if (d < 0 || d >= g.D) continue;
      for (int kh = 0; kh < g.kernel; ++kh) {
        const std::int64_t h = oh * g.stride - g.padding + kh * g.dilation;
        if (h < 0 || h >= g.H) continue;
        for (int kw = 0; kw < g.kernel; ++kw) {
          const std::int64_t w = ow * g.stride - g.padding + kw * g.dilation;
          if (w < 0 || w >= g.W) continue;
          acc += x[(((n * g.D + d) * g.H + h) * g.W + w) * g.C + c] * weight[((kd * g.kernel + kh) * g.kernel + kw) * g.C + c];
        }
      }
    }
    y[i] = acc;
  }
}

// network.md's deformable depthwise conv: trilinear samples at p + dilation*t_k + offset,
// neighbours outside the volume read zero (also on axes of size 1).
__global__ void deform_kernel(const float* x, const float* offsets, const float* weight, const float* bias, float* y,
                              std::int64_t N, std::int64_t D, std::int64_t H, std::int64_t W, std::int64_t C,
                              int kernel, int dilation) {
  const std::int64_t total = N * D * H * W * C, taps = static_cast<std::int64_t>(kernel) * kernel * kernel;
  const int half = (kernel - 1) / 2;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t c = i % C, p = i / C;
    const std::int64_t w = p % W, h = (p / W) % H, d = (p / (W * H)) % D, n = p / (W * H * D);
    const float* delta = offsets + p * 3 * taps;
    float acc = bias ? bias[c] : 0.0f;
    for (std::int64_t k = 0; k < taps; ++k) {
      const int kd = static_cast<int>(k / (kernel * kernel)), kh = static_cast<int>((k / kernel) % kernel),
                kw = static_cast<int>(k % kernel);
      const float z = static_cast<float>(d + dilation * (kd - half)) + delta[3 * k];
      const float yy = static_cast<float>(h + dilation * (kh - half)) + delta[3 * k + 1];
      const float xx = static_cast<float>(w + dilation * (kw - half)) + delta[3 * k + 2];
      const float fz = floorf(z), fy = floorf(yy), fx = floorf(xx);
      const std::int64_t d0 = static_cast<std::int64_t>(fz), h0 = static_cast<std::int64_t>(fy),
                         w0 = static_cast<std::int64_t>(fx);
      const float tz = z - fz, ty = yy - fy, tx = xx - fx;
      float sample = 0.0f;
      for (int a = 0; a < 2; ++a) {
        const std::int64_t dd = d0 + a;
        if (dd < 0 || dd >= D) continue;
        for (int b = 0; b < 2; ++b) {
          const std::int64_t hh = h0 + b;
          if (hh < 0 || hh >= H) continue;
          for (int e = 0; e < 2; ++e) {
            const std::int64_t ww = w0 + e;
            if (ww < 0 || ww >= W) continue;
            const float weight_abc = (a ? tz : 1 - tz) * (b ? ty : 1 - ty) * (e ? tx : 1 - tx);
            sample += weight_abc * x[(((n * D + dd) * H + hh) * W + ww) * C + c];
          }
        }
      }
      acc += weight[k * C + c] * sample;
    }
    y[i] = acc;
  }
}

__global__ void scatter_blocks_kernel(const float* blocks, const float* bias, float* y, std::int64_t N,
                                      std::int64_t D, std::int64_t H, std::int64_t W, std::int64_t cout) {
  const std::int64_t total = N * D * H * W * 8 * cout;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t c = i % cout, sub = (i / cout) % 8, v = i / (8 * cout);
    const std::int64_t w = v % W, h = (v / W) % H, d = (v / (W * H)) % D, n = v / (W * H * D);
    const std::int64_t od = 2 * d + (sub >> 2), oh = 2 * h + ((sub >> 1) & 1), ow = 2 * w + (sub & 1);
    y[(((n * 2 * D + od) * 2 * H + oh) * 2 * W + ow) * cout + c] = blocks[i] + (bias ? bias[c] : 0.0f);
  }
}

}  // namespace

Tensor conv3d(const Tensor& x, const Tensor& weight, const Tensor& bias, const ConvParams& p) {
  const Shape out_shape = conv3d_output_shape(x, weight, bias, p);
  require_cuda_f32(x, "conv3d", "input");
  require_cuda_f32(weight, "conv3d", "weight");
  Tensor y = empty_like_device(out_shape, x);
  const Geometry g = geometry(x.shape(), out_shape, p);
  if (p.groups == g.C && p.groups == g.Co) {
    depthwise_kernel<<<blocks_for(y.numel()), kThreads>>>(ptr(x), ptr(weight), ptr(bias), mutable_ptr(y), g);
    check_launch("conv3d depthwise");
    return y;
  }
  const std::int64_t cin_group = g.C / p.groups, cout_group = g.Co / p.groups;
  const std::int64_t patch = static_cast<std::int64_t>(p.kernel) * p.kernel * p.kernel * cin_group;
  const std::int64_t voxels = g.N * g.Do * g.Ho * g.Wo;
  // Tiles of at most 64 Mi column entries (256 MiB) bound the im2col buffer.
  const std::int64_t tile = std::max<std::int64_t>(1, std::min<std::int64_t>(voxels, (std::int64_t(64) << 20) / patch));
  Tensor columns = Tensor::empty({tile * patch}, DType::f32, x.device());
  fill_bias_kernel<<<blocks_for(y.numel()), kThreads>>>(ptr(bias), mutable_ptr(y), voxels, g.Co);
  check_launch("conv3d bias");
  for (std::int64_t v0 = 0; v0 < voxels; v0 += tile) {
    const std::int64_t rows = std::min(tile, voxels - v0);
    for (std::int64_t group = 0; group < p.groups; ++group) {
      im2col_kernel<<<blocks_for(rows * patch), kThreads>>>(ptr(x), mutable_ptr(columns), g, v0, rows, cin_group, group);
      check_launch("conv3d im2col");
      gemm(ptr(columns), ptr(weight) + group * cout_group, mutable_ptr(y) + v0 * g.Co + group * cout_group, rows,
           cout_group, patch, patch, g.Co, g.Co, true);
    }
  }
  return y;
}

Tensor conv_transpose3d_k2s2(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  const Shape out_shape = conv_transpose3d_output_shape(x, weight, bias);
  require_cuda_f32(x, "conv_transpose3d", "input");
  require_cuda_f32(weight, "conv_transpose3d", "weight");
  const std::int64_t voxels = x.numel() / x.dim(4), cout = out_shape[4];
  Tensor blocks = Tensor::empty({voxels, 8 * cout}, DType::f32, x.device());
  gemm(ptr(x), ptr(weight), mutable_ptr(blocks), voxels, 8 * cout, x.dim(4), x.dim(4), 8 * cout, 8 * cout, false);
  Tensor y = empty_like_device(out_shape, x);
  scatter_blocks_kernel<<<blocks_for(blocks.numel()), kThreads>>>(ptr(blocks), ptr(bias), mutable_ptr(y), x.dim(0),
                                                                   x.dim(1), x.dim(2), x.dim(3), cout);
  check_launch("conv_transpose3d scatter");
  return y;
}

Tensor deform_dwconv3d(const Tensor& x, const Tensor& offsets, const Tensor& weight, const Tensor& bias,
                       int kernel, int dilation) {
  check_deform_args(x, offsets, weight, bias, kernel, dilation);
  require_cuda_f32(x, "deform_dwconv3d", "input");
  require_cuda_f32(offsets, "deform_dwconv3d", "offsets");
  Tensor y = empty_like_device(x.shape(), x);
  deform_kernel<<<blocks_for(y.numel()), kThreads>>>(ptr(x), ptr(offsets), ptr(weight), ptr(bias), mutable_ptr(y),
                                                     x.dim(0), x.dim(1), x.dim(2), x.dim(3), x.dim(4), kernel,
                                                     dilation);
  check_launch("deform_dwconv3d");
  return y;
}

}  // namespace voxmamba::kernels::cuda
