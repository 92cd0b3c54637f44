// CPU convolutions on channels-last volumes. Dense convs gather a tile of output voxels'
// receptive fields (im2col) and multiply it by the packed weight on BLAS; depthwise and
// deformable convs accumulate over taps with the channel loop innermost, contiguous in
// channels-last memory.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/gemm.h"
#include "kernels/op_checks.h"

namespace voxmamba::kernels::cpu {
namespace {

struct Volume5 {
  std::int64_t N, D, H, W, C;
  explicit Volume5(const Shape& s) : N(s[0]), D(s[1]), H(s[2]), W(s[3]), C(s[4]) {}
  std::int64_t voxel(std::int64_t n, std::int64_t d, std::int64_t h, std::int64_t w) const {
    return ((n * D + d) * H + h) * W + w;
  }
};

void fill_bias_rows(float* y, std::int64_t rows, std::int64_t channels, const Tensor& bias) {
  if (!bias.defined()) {
    std::memset(y, 0, sizeof(float) * rows * channels);
    return;
  }
  const float* b = bias.data<float>();
  for (std::int64_t r = 0; r < rows; ++r) std::memcpy(y + r * channels, b, sizeof(float) * channels);
}

// Depthwise (groups == Cin == Cout): each output voxel sums its taps channel by channel.
Tensor depthwise_conv3d(const Tensor& x, const Tensor& weight, const Tensor& bias, const ConvParams& p,
                        const Shape& out_shape) {
  Tensor y = Tensor::empty(out_shape);
  const Volume5 in(x.shape()), out(out_shape);
  const float* xd = x.data<float>();
  const float* wd = weight.data<float>();
  float* yd = y.data<float>();
  const std::int64_t C = in.C, rows = out.N * out.D * out.H;
  parallel_for(rows, 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t row = begin; row < end; ++row) {
      const std::int64_t n = row / (out.D * out.H), od = (row / out.H) % out.D, oh = row % out.H;
      float* y_row = yd + out.voxel(n, od, oh, 0) * C;
      fill_bias_rows(y_row, out.W, C, bias);
      for (int kd = 0; kd < p.kernel; ++kd) {
        const std::int64_t d = od * p.stride - p.padding + kd * p.dilation;
        if (d < 0 || d >= in.D) continue;
        for (int kh = 0; kh < p.kernel; ++kh) {
          const std::int64_t h = oh * p.stride - p.padding + kh * p.dilation;
          if (h < 0 || h >= in.H) continue;
          for (int kw = 0; kw < p.kernel; ++kw) {
            const float* w_tap = wd + ((kd * p.kernel + kh) * p.kernel + kw) * C;
            for (std::int64_t ow = 0; ow < out.W; ++ow) {
              const std::int64_t w = ow * p.stride - p.padding + kw * p.dilation;
              if (w < 0 || w >= in.W) continue;
              const float* x_vox = xd + in.voxel(n, d, h, w) * C;
              float* acc = y_row + ow * C;
              for (std::int64_t c = 0; c < C; ++c) acc[c] += x_vox[c] * w_tap[c];
            }
          }
        }
      }
    }
  });
  return y;
}

// Dense or grouped conv: im2col on tiles of output voxels, one GEMM per tile and group.
Tensor gemm_conv3d(const Tensor& x, const Tensor& weight, const Tensor& bias, const ConvParams& p,
                   const Shape& out_shape) {
  Tensor y = Tensor::empty(out_shape);
  const Volume5 in(x.shape()), out(out_shape);
  const std::int64_t taps = static_cast<std::int64_t>(p.kernel) * p.kernel * p.kernel;
  const std::int64_t cin_group = in.C / p.groups, cout_group = out.C / p.groups;
  const std::int64_t patch = taps * cin_group;
  const std::int64_t voxels = out.N * out.D * out.H * out.W;
  // Tiles of ~256 KiB of patches: large enough for an efficient GEMM, small enough for L2.
  const std::int64_t tile = std::clamp<std::int64_t>(65536 / std::max<std::int64_t>(1, patch), 16, 1024);
  const std::int64_t tiles = (voxels + tile - 1) / tile;
  const float* xd = x.data<float>();
  const float* wd = weight.data<float>();
  float* yd = y.data<float>();
  parallel_for(tiles, 1, [&](std::int64_t tile_begin, std::int64_t tile_end) {
    std::vector<float> columns(static_cast<std::size_t>(tile * patch));
    for (std::int64_t t = tile_begin; t < tile_end; ++t) {
      const std::int64_t v0 = t * tile, v1 = std::min(voxels, v0 + tile);
      fill_bias_rows(yd + v0 * out.C, v1 - v0, out.C, bias);
      for (std::int64_t g = 0; g < p.groups; ++g) {
        for (std::int64_t v = v0; v < v1; ++v) {
          const std::int64_t ow = v % out.W, oh = (v / out.W) % out.H, od = (v / (out.W * out.H)) % out.D,
                             n = v / (out.W * out.H * out.D);
          float* col = columns.data() + (v - v0) * patch;
          for (int kd = 0; kd < p.kernel; ++kd) {
            const std::int64_t d = od * p.stride - p.padding + kd * p.dilation;
            for (int kh = 0; kh < p.kernel; ++kh) {
              const std::int64_t h = oh * p.stride - p.padding + kh * p.dilation;
              for (int kw = 0; kw < p.kernel; ++kw) {
                const std::int64_t w = ow * p.stride - p.padding + kw * p.dilation;
                float* dst = col + ((kd * p.kernel + kh) * p.kernel + kw) * cin_group;
                if (d < 0 || d >= in.D || h < 0 || h >= in.H || w < 0 || w >= in.W) {
                  std::memset(dst, 0, sizeof(float) * cin_group);
                } else {
                  std::memcpy(dst, xd + in.voxel(n, d, h, w) * in.C + g * cin_group, sizeof(float) * cin_group);
                }
              }
            }
          }
        }
        gemm(columns.data(), wd + g * cout_group, yd + v0 * out.C + g * cout_group, v1 - v0, cout_group, patch,
             patch, out.C, out.C, /*accumulate=*/true);
      }
    }
  });
  return y;
}

// Trilinear sample of all channels at one real position, accumulated into `acc` with
// per-channel weight `w_tap` (network.md: neighbours outside the volume read zero).
inline void accumulate_trilinear(const float* x, const Volume5& v, std::int64_t n, float z, float y, float xw,
                                 const float* w_tap, float* acc, float* scratch) {
  const float fz = std::floor(z), fy = std::floor(y), fx = std::floor(xw);
  const std::int64_t d0 = static_cast<std::int64_t>(fz), h0 = static_cast<std::int64_t>(fy),
                     w0 = static_cast<std::int64_t>(fx);
  const float tz = z - fz, ty = y - fy, tx = xw - fx;
  if (d0 + 1 < 0 || d0 >= v.D || h0 + 1 < 0 || h0 >= v.H || w0 + 1 < 0 || w0 >= v.W) return;
  const std::int64_t C = v.C;
  bool any = false;
  for (int a = 0; a < 2; ++a) {
    const std::int64_t d = d0 + a;
    if (d < 0 || d >= v.D) continue;
    for (int b = 0; b < 2; ++b) {
      const std::int64_t h = h0 + b;
      if (h < 0 || h >= v.H) continue;
      for (int e = 0; e < 2; ++e) {
        const std::int64_t w = w0 + e;
        if (w < 0 || w >= v.W) continue;
        const float weight = (a ? tz : 1 - tz) * (b ? ty : 1 - ty) * (e ? tx : 1 - tx);
        const float* src = x + v.voxel(n, d, h, w) * C;
        if (!any) {
          for (std::int64_t c = 0; c < C; ++c) scratch[c] = weight * src[c];
          any = true;
        } else {
          for (std::int64_t c = 0; c < C; ++c) scratch[c] += weight * src[c];
        }
      }
    }
  }
  if (any) {
    for (std::int64_t c = 0; c < C; ++c) acc[c] += w_tap[c] * scratch[c];
  }
}

}  // namespace

Tensor conv3d(const Tensor& x, const Tensor& weight, const Tensor& bias, const ConvParams& p) {
  const Shape out_shape = conv3d_output_shape(x, weight, bias, p);
  if (is_depthwise(x.dim(4), out_shape[4], p)) return depthwise_conv3d(x, weight, bias, p, out_shape);
  return gemm_conv3d(x, weight, bias, p, out_shape);
}

Tensor conv_transpose3d_k2s2(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& skip) {
  const Shape out_shape = conv_transpose3d_output_shape(x, weight, bias, skip);
  check_f32_cpu(skip, "conv_transpose3d", "skip");
  const Volume5 in(x.shape()), out(out_shape);
  const std::int64_t voxels = in.N * in.D * in.H * in.W, cout = out.C;
  // One GEMM gives every input voxel's 8 output voxels: [voxels, Cin] x [Cin, 8*Cout].
  Tensor blocks = Tensor::empty({voxels, 8 * cout});
  parallel_gemm(x.data<float>(), weight.data<float>(), blocks.data<float>(), voxels, 8 * cout, in.C, in.C,
                8 * cout, 8 * cout, false);
  Tensor y = Tensor::empty(out_shape);
  const float* bd = blocks.data<float>();
  float* yd = y.data<float>();
  const float* bias_d = bias.defined() ? bias.data<float>() : nullptr;
  parallel_for(voxels, 64, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t v = begin; v < end; ++v) {
      const std::int64_t w = v % in.W, h = (v / in.W) % in.H, d = (v / (in.W * in.H)) % in.D,
                         n = v / (in.W * in.H * in.D);
      for (int sub = 0; sub < 8; ++sub) {
        const std::int64_t od = 2 * d + (sub >> 2), oh = 2 * h + ((sub >> 1) & 1), ow = 2 * w + (sub & 1);
        float* dst = yd + out.voxel(n, od, oh, ow) * cout;
        const float* src = bd + v * 8 * cout + sub * cout;
        for (std::int64_t c = 0; c < cout; ++c) dst[c] = src[c] + (bias_d ? bias_d[c] : 0.0f);
      }
    }
  });
  return skip.defined() ? concat_channels(y, skip) : y;
}

Tensor deform_dwconv3d(const Tensor& x, const Tensor& offsets, const Tensor& weight, const Tensor& bias,
                       int kernel, int dilation, const Tensor& offset_bias) {
  check_deform_args(x, offsets, weight, bias, kernel, dilation, offset_bias);
  check_f32_cpu(offset_bias, "deform_dwconv3d", "offset bias");
  const float* shift = offset_bias.defined() ? offset_bias.data<float>() : nullptr;
  Tensor y = Tensor::empty(x.shape());
  const Volume5 v(x.shape());
  const std::int64_t C = v.C;
  const int half = (kernel - 1) / 2;
  const float* xd = x.data<float>();
  const float* od = offsets.data<float>();
  const float* wd = weight.data<float>();
  float* yd = y.data<float>();
  const std::int64_t voxels = v.N * v.D * v.H * v.W;
  parallel_for(voxels, 16, [&](std::int64_t begin, std::int64_t end) {
    std::vector<float> scratch(static_cast<std::size_t>(C));
    for (std::int64_t p = begin; p < end; ++p) {
      const std::int64_t w = p % v.W, h = (p / v.W) % v.H, d = (p / (v.W * v.H)) % v.D, n = p / (v.W * v.H * v.D);
      float* acc = yd + p * C;
      fill_bias_rows(acc, 1, C, bias);
      const float* delta = od + p * offsets.dim(4);  // rows may be padded (ops.h)
      for (int kd = 0; kd < kernel; ++kd)
        for (int kh = 0; kh < kernel; ++kh)
          for (int kw = 0; kw < kernel; ++kw) {
            const std::int64_t k = (kd * kernel + kh) * kernel + kw;
            // The offset bias is added to the offset first, as the offset head's GEMM would.
            const float dz = delta[3 * k + 0] + (shift ? shift[3 * k + 0] : 0.0f);
            const float dy = delta[3 * k + 1] + (shift ? shift[3 * k + 1] : 0.0f);
            const float dx = delta[3 * k + 2] + (shift ? shift[3 * k + 2] : 0.0f);
            const float z = static_cast<float>(d + dilation * (kd - half)) + dz;
            const float yy = static_cast<float>(h + dilation * (kh - half)) + dy;
            const float xx = static_cast<float>(w + dilation * (kw - half)) + dx;
            accumulate_trilinear(xd, v, n, z, yy, xx, wd + k * C, acc, scratch.data());
          }
    }
  });
  return y;
}

}  // namespace voxmamba::kernels::cpu
