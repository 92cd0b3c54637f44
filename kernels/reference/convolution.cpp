// Plain-loop convolutions: the definitions the CPU and CUDA kernels are tested against.
#include <cmath>

#include "kernels/op_checks.h"
#include "kernels/reference/reference_ops.h"

namespace voxmamba::kernels::reference {
namespace {

// Index of voxel (n, d, h, w) channel c in an N D H W C tensor.
struct Layout5 {
  std::int64_t D, H, W, C;
  std::int64_t at(std::int64_t n, std::int64_t d, std::int64_t h, std::int64_t w, std::int64_t c) const {
    return (((n * D + d) * H + h) * W + w) * C + c;
  }
};
Layout5 layout_of(const Tensor& x) { return {x.dim(1), x.dim(2), x.dim(3), x.dim(4)}; }

// Reads x at a real-valued position with trilinear weights; neighbours outside read zero.
double trilinear(const float* x, const Layout5& L, std::int64_t n, std::int64_t c, double z, double y,
                 double xw) {
  const double fz = std::floor(z), fy = std::floor(y), fx = std::floor(xw);
  const double tz = z - fz, ty = y - fy, tx = xw - fx;
  double sum = 0.0;
  for (int a = 0; a < 2; ++a) {
    for (int b = 0; b < 2; ++b) {
      for (int e = 0; e < 2; ++e) {
        const std::int64_t d = static_cast<std::int64_t>(fz) + a, h = static_cast<std::int64_t>(fy) + b,
                           w = static_cast<std::int64_t>(fx) + e;
        if (d < 0 || d >= L.D || h < 0 || h >= L.H || w < 0 || w >= L.W) continue;
        const double weight = (a ? tz : 1 - tz) * (b ? ty : 1 - ty) * (e ? tx : 1 - tx);
        sum += weight * x[L.at(n, d, h, w, c)];
      }
    }
  }
  return sum;
}

}  // namespace

Tensor conv3d(const Tensor& x, const Tensor& weight, const Tensor& bias, const ConvParams& p) {
  const Shape out_shape = conv3d_output_shape(x, weight, bias, p);
  Tensor y = Tensor::empty(out_shape);
  const Layout5 in = layout_of(x), out = layout_of(y);
  const std::int64_t cin_group = x.dim(4) / p.groups, cout_group = y.dim(4) / p.groups;
  const float* xd = x.data<float>();
  const float* wd = weight.data<float>();
  float* yd = y.data<float>();
  for (std::int64_t n = 0; n < y.dim(0); ++n)
    for (std::int64_t od = 0; od < out.D; ++od)
      for (std::int64_t oh = 0; oh < out.H; ++oh)
        for (std::int64_t ow = 0; ow < out.W; ++ow)
          for (std::int64_t o = 0; o < out.C; ++o) {
            const std::int64_t group = o / cout_group;
            double sum = bias.defined() ? bias.data<float>()[o] : 0.0;
            for (int kd = 0; kd < p.kernel; ++kd)
              for (int kh = 0; kh < p.kernel; ++kh)
                for (int kw = 0; kw < p.kernel; ++kw) {
                  const std::int64_t d = od * p.stride - p.padding + kd * p.dilation;
                  const std::int64_t h = oh * p.stride - p.padding + kh * p.dilation;
                  const std::int64_t w = ow * p.stride - p.padding + kw * p.dilation;
                  if (d < 0 || d >= in.D || h < 0 || h >= in.H || w < 0 || w >= in.W) continue;
                  const std::int64_t tap = (kd * p.kernel + kh) * p.kernel + kw;
                  for (std::int64_t ci = 0; ci < cin_group; ++ci) {
                    sum += static_cast<double>(xd[in.at(n, d, h, w, group * cin_group + ci)]) *
                           wd[(tap * cin_group + ci) * out.C + o];
                  }
                }
            yd[out.at(n, od, oh, ow, o)] = static_cast<float>(sum);
          }
  return y;
}

Tensor conv_transpose3d_k2s2(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& skip) {
  Tensor y = Tensor::empty(conv_transpose3d_output_shape(x, weight, bias, skip));
  const Layout5 in = layout_of(x), out = layout_of(y);
  const float* xd = x.data<float>();
  const float* wd = weight.data<float>();
  float* yd = y.data<float>();
  for (std::int64_t n = 0; n < y.dim(0); ++n)
    for (std::int64_t od = 0; od < out.D; ++od)
      for (std::int64_t oh = 0; oh < out.H; ++oh)
        for (std::int64_t ow = 0; ow < out.W; ++ow)
          for (std::int64_t o = 0; o < out.C; ++o) {
            const std::int64_t sub = ((od % 2) * 2 + oh % 2) * 2 + ow % 2;
            double sum = bias.defined() ? bias.data<float>()[o] : 0.0;
            for (std::int64_t ci = 0; ci < in.C; ++ci) {
              sum += static_cast<double>(xd[in.at(n, od / 2, oh / 2, ow / 2, ci)]) * wd[(ci * 8 + sub) * out.C + o];
            }
            yd[out.at(n, od, oh, ow, o)] = static_cast<float>(sum);
          }
  return skip.defined() ? concat_channels(y, skip) : y;
}

Tensor deform_dwconv3d(const Tensor& x, const Tensor& offsets, const Tensor& weight, const Tensor& bias,
                       int kernel, int dilation, const Tensor& offset_bias) {
  check_deform_args(x, offsets, weight, bias, kernel, dilation, offset_bias);
  Tensor y = Tensor::empty(x.shape());
  const Layout5 L = layout_of(x), LO = layout_of(offsets);
  const int half = (kernel - 1) / 2;
  const float* xd = x.data<float>();
  const float* od = offsets.data<float>();
  const float* wd = weight.data<float>();
  float* yd = y.data<float>();
  for (std::int64_t n = 0; n < x.dim(0); ++n)
    for (std::int64_t d = 0; d < L.D; ++d)
      for (std::int64_t h = 0; h < L.H; ++h)
        for (std::int64_t w = 0; w < L.W; ++w)
          for (std::int64_t c = 0; c < L.C; ++c) {
            double sum = bias.defined() ? bias.data<float>()[c] : 0.0;
            for (int kd = 0; kd < kernel; ++kd)
              for (int kh = 0; kh < kernel; ++kh)
                for (int kw = 0; kw < kernel; ++kw) {
                  const std::int64_t k = (kd * kernel + kh) * kernel + kw;
                  const float* delta = od + LO.at(n, d, h, w, 3 * k);
                  double shift[3] = {delta[0], delta[1], delta[2]};
                  for (int a = 0; a < 3 && offset_bias.defined(); ++a) shift[a] += offset_bias.data<float>()[3 * k + a];
                  const double z = d + dilation * (kd - half) + shift[0];
                  const double yy = h + dilation * (kh - half) + shift[1];
                  const double xx = w + dilation * (kw - half) + shift[2];
                  sum += wd[k * L.C + c] * trilinear(xd, L, n, c, z, yy, xx);
                }
            yd[L.at(n, d, h, w, c)] = static_cast<float>(sum);
          }
  return y;
}

}  // namespace voxmamba::kernels::reference
