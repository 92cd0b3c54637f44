// Plain-loop norms, activations, linear maps and per-token reductions.
#include <cmath>
#include <vector>

#include "core/bfloat16.h"
#include "core/float16.h"
#include "kernels/activation_math.h"
#include "kernels/op_checks.h"
#include "kernels/reference/reference_ops.h"

namespace voxmamba::kernels::reference {
namespace {

template <typename F> Tensor map_elements(const Tensor& x, F f) {
  Tensor y = Tensor::empty(x.shape());
  const float* xd = x.data<float>();
  float* yd = y.data<float>();
  for (std::int64_t i = 0; i < x.numel(); ++i) yd[i] = static_cast<float>(f(static_cast<double>(xd[i])));
  return y;
}

template <typename F> Tensor zip_elements(const Tensor& a, const Tensor& b, const char* op, F f) {
  check_same_shape(a, b, op);
  Tensor y = Tensor::empty(a.shape());
  const float* ad = a.data<float>();
  const float* bd = b.data<float>();
  float* yd = y.data<float>();
  for (std::int64_t i = 0; i < a.numel(); ++i) yd[i] = f(ad[i], bd[i]);
  return y;
}

}  // namespace

Tensor gelu(const Tensor& x) { return map_elements(x, [](double v) { return gelu_exact(v); }); }
Tensor silu(const Tensor& x) { return map_elements(x, [](double v) { return silu_of(v); }); }
Tensor softplus(const Tensor& x) { return map_elements(x, [](double v) { return softplus_of(v); }); }
Tensor leaky_relu(const Tensor& x, float slope) {
  return map_elements(x, [slope](double v) { return leaky_relu_of(v, static_cast<double>(slope)); });
}
Tensor add(const Tensor& a, const Tensor& b) { return zip_elements(a, b, "add", [](float p, float q) { return p + q; }); }
Tensor mul(const Tensor& a, const Tensor& b) { return zip_elements(a, b, "mul", [](float p, float q) { return p * q; }); }

Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps) {
  const std::int64_t C = x.dim(-1), tokens = x.numel() / C;
  check_vector(gamma, C, "layer_norm", "gamma");
  check_vector(beta, C, "layer_norm", "beta");
  Tensor y = Tensor::empty(x.shape());
  const float* xd = x.data<float>();
  float* yd = y.data<float>();
  for (std::int64_t t = 0; t < tokens; ++t) {
    const float* row = xd + t * C;
    double mean = 0, var = 0;
    for (std::int64_t c = 0; c < C; ++c) mean += row[c];
    mean /= C;
    for (std::int64_t c = 0; c < C; ++c) var += (row[c] - mean) * (row[c] - mean);
    var /= C;
    const double inv = 1.0 / std::sqrt(var + eps);
    for (std::int64_t c = 0; c < C; ++c) {
      double v = (row[c] - mean) * inv;
      if (gamma.defined()) v = v * gamma.data<float>()[c];
      if (beta.defined()) v += beta.data<float>()[c];
      yd[t * C + c] = static_cast<float>(v);
    }
  }
  return y;
}

Tensor instance_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps,
                     const NormEpilogue& epilogue) {
  check_rank(x, 5, "instance_norm", "input");
  const std::int64_t N = x.dim(0), C = x.dim(4), voxels = x.numel() / (N * C);
  check_vector(gamma, C, "instance_norm", "gamma");
  check_vector(beta, C, "instance_norm", "beta");
  check_norm_epilogue(x, epilogue);
  Tensor y = Tensor::empty(x.shape());
  const float* xd = x.data<float>();
  // The residual, instance-normalised first where the epilogue says so.
  const Tensor residual = epilogue.residual_gamma.defined()
                              ? reference::instance_norm(epilogue.residual, epilogue.residual_gamma,
                                                         epilogue.residual_beta, eps, NormEpilogue{})
                              : epilogue.residual;
  const float* rd = residual.defined() ? residual.data<float>() : nullptr;
  float* yd = y.data<float>();
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t c = 0; c < C; ++c) {
      const std::int64_t base = n * voxels * C + c;
      double mean = 0, var = 0;
      for (std::int64_t v = 0; v < voxels; ++v) mean += xd[base + v * C];
      mean /= voxels;
      for (std::int64_t v = 0; v < voxels; ++v) var += (xd[base + v * C] - mean) * (xd[base + v * C] - mean);
      var /= voxels;
      const double inv = 1.0 / std::sqrt(var + eps);
      const double g = gamma.defined() ? gamma.data<float>()[c] : 1.0;
      const double b = beta.defined() ? beta.data<float>()[c] : 0.0;
      for (std::int64_t v = 0; v < voxels; ++v) {
        double value = (xd[base + v * C] - mean) * inv * g + b;
        if (rd) value += rd[base + v * C];
        if (epilogue.leaky_relu && value < 0) value *= epilogue.leaky_slope;
        yd[base + v * C] = static_cast<float>(value);
      }
    }
  return y;
}

Tensor conv3d_instance_norm(const Tensor& x, const Tensor& weight, const Tensor& bias,
                            const ConvParams& params, const Tensor& gamma, const Tensor& beta, float eps,
                            const NormEpilogue& epilogue) {
  return reference::instance_norm(reference::conv3d(x, weight, bias, params), gamma, beta, eps, epilogue);
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias, std::optional<DType> output,
              const Tensor& residual) {
  if (output && *output != DType::f32) throw Error("linear: the reference writes float32 only");
  Tensor y = Tensor::empty(linear_output_shape(x, weight, bias));
  check_linear_residual(x, residual, y.shape(), DType::f32);
  const std::int64_t in = weight.dim(0), out = weight.dim(1), rows = x.numel() / in;
  const float* xd = x.data<float>();
  const float* wd = weight.data<float>();
  float* yd = y.data<float>();
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t o = 0; o < out; ++o) {
      double sum = bias.defined() ? bias.data<float>()[o] : 0.0;
      if (residual.defined()) sum += residual.data<float>()[r * out + o];
      for (std::int64_t i = 0; i < in; ++i) sum += static_cast<double>(xd[r * in + i]) * wd[i * out + o];
      yd[r * out + o] = static_cast<float>(sum);
    }
  return y;
}

Tensor concat_channels(const Tensor& a, const Tensor& b) {
  if (a.rank() != b.rank() || a.numel() / a.dim(-1) != b.numel() / b.dim(-1)) {
    throw Error("concat_channels: shapes " + shape_string(a.shape()) + " and " + shape_string(b.shape()) +
                " differ outside the last axis");
  }
  Shape shape = a.shape();
  const std::int64_t ca = a.dim(-1), cb = b.dim(-1), rows = a.numel() / ca;
  shape.back() = ca + cb;
  Tensor y = Tensor::empty(shape);
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t c = 0; c < ca; ++c) y.data<float>()[r * (ca + cb) + c] = a.data<float>()[r * ca + c];
    for (std::int64_t c = 0; c < cb; ++c) y.data<float>()[r * (ca + cb) + ca + c] = b.data<float>()[r * cb + c];
  }
  return y;
}

Tensor softmax(const Tensor& x) {
  const std::int64_t C = x.dim(-1), rows = x.numel() / C;
  Tensor y = Tensor::empty(x.shape());
  const float* xd = x.data<float>();
  float* yd = y.data<float>();
  for (std::int64_t r = 0; r < rows; ++r) {
    double peak = xd[r * C];
    for (std::int64_t c = 1; c < C; ++c) peak = std::max<double>(peak, xd[r * C + c]);
    double total = 0;
    for (std::int64_t c = 0; c < C; ++c) total += std::exp(xd[r * C + c] - peak);
    for (std::int64_t c = 0; c < C; ++c) yd[r * C + c] = static_cast<float>(std::exp(xd[r * C + c] - peak) / total);
  }
  return y;
}

Tensor argmax(const Tensor& x) {
  const std::int64_t C = x.dim(-1), rows = x.numel() / C;
  Shape shape = x.shape();
  shape.pop_back();
  Tensor y = Tensor::empty(shape, DType::i32);
  const float* xd = x.data<float>();
  std::int32_t* yd = y.data<std::int32_t>();
  for (std::int64_t r = 0; r < rows; ++r) {
    std::int64_t best = 0;
    for (std::int64_t c = 1; c < C; ++c) {
      if (xd[r * C + c] > xd[r * C + best]) best = c;
    }
    yd[r] = static_cast<std::int32_t>(best);
  }
  return y;
}

Tensor cast(const Tensor& x, DType dtype) {
  if (x.dtype() == dtype) return x;
  Tensor y = Tensor::empty(x.shape(), dtype);
  const std::int64_t n = x.numel();
  if (x.dtype() == DType::f32 && dtype == DType::bf16) {
    for (std::int64_t i = 0; i < n; ++i) y.data<BFloat16>()[i] = to_bfloat16(x.data<float>()[i]);
  } else if (x.dtype() == DType::bf16 && dtype == DType::f32) {
    for (std::int64_t i = 0; i < n; ++i) y.data<float>()[i] = to_float(x.data<BFloat16>()[i]);
  } else if (x.dtype() == DType::f32 && dtype == DType::f16) {
    for (std::int64_t i = 0; i < n; ++i) y.data<Float16>()[i] = to_float16(x.data<float>()[i]);
  } else if (x.dtype() == DType::f16 && dtype == DType::f32) {
    for (std::int64_t i = 0; i < n; ++i) y.data<float>()[i] = to_float(x.data<Float16>()[i]);
  } else {
    throw Error(std::string("cast: between float32 and bfloat16 or float16 only, not ") + dtype_name(x.dtype()) +
                " to " + dtype_name(dtype));
  }
  return y;
}

// Element by element, in float32 like every reference op: y[n, d, h, w, c] = x at the mirrored
// position.
Tensor flip(const Tensor& x, int axis_mask) {
  const FlipGeometry g = check_flip_args(x, axis_mask);
  Tensor y = Tensor::empty(x.shape());
  const float* xd = x.data<float>();
  float* yd = y.data<float>();
  for (std::int64_t n = 0; n < g.batch; ++n)
    for (std::int64_t d = 0; d < g.depth; ++d)
      for (std::int64_t h = 0; h < g.height; ++h)
        for (std::int64_t w = 0; w < g.width; ++w) {
          const std::int64_t sd = g.flip_d ? g.depth - 1 - d : d, sh = g.flip_h ? g.height - 1 - h : h,
                             sw = g.flip_w ? g.width - 1 - w : w;
          for (std::int64_t c = 0; c < g.channels; ++c) {
            yd[(((n * g.depth + d) * g.height + h) * g.width + w) * g.channels + c] =
                xd[(((n * g.depth + sd) * g.height + sh) * g.width + sw) * g.channels + c];
          }
        }
  return y;
}

}  // namespace voxmamba::kernels::reference
