// CPU norms, activations, linear maps, elementwise ops and per-token reductions.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/bfloat16.h"
#include "core/float16.h"
#include "core/thread_pool.h"
#include "kernels/activation_math.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/gemm.h"
#include "kernels/op_checks.h"

namespace voxmamba::kernels::cpu {
namespace {

constexpr std::int64_t kElementGrain = 1 << 14;

template <typename F> Tensor map_elements(const Tensor& x, F f) {
  check_f32_cpu(x, "activation", "input");
  Tensor y = Tensor::empty(x.shape());
  const float* xd = x.data<float>();
  float* yd = y.data<float>();
  parallel_for(x.numel(), kElementGrain, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) yd[i] = f(xd[i]);
  });
  return y;
}

template <typename F> Tensor zip_elements(const Tensor& a, const Tensor& b, const char* op, F f) {
  check_same_shape(a, b, op);
  Tensor y = Tensor::empty(a.shape());
  const float* ad = a.data<float>();
  const float* bd = b.data<float>();
  float* yd = y.data<float>();
  parallel_for(a.numel(), kElementGrain, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) yd[i] = f(ad[i], bd[i]);
  });
  return y;
}

std::int64_t rows_of(const Tensor& x) { return x.dim(-1) == 0 ? 0 : x.numel() / x.dim(-1); }

}  // namespace

Tensor gelu(const Tensor& x) { return map_elements(x, [](float v) { return gelu_exact(v); }); }
Tensor silu(const Tensor& x) { return map_elements(x, [](float v) { return silu_of(v); }); }
Tensor softplus(const Tensor& x) { return map_elements(x, [](float v) { return softplus_of(v); }); }
Tensor leaky_relu(const Tensor& x, float slope) {
  return map_elements(x, [slope](float v) { return leaky_relu_of(v, slope); });
}
Tensor add(const Tensor& a, const Tensor& b) { return zip_elements(a, b, "add", [](float p, float q) { return p + q; }); }
Tensor mul(const Tensor& a, const Tensor& b) { return zip_elements(a, b, "mul", [](float p, float q) { return p * q; }); }

Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps) {
  check_f32_cpu(x, "layer_norm", "input");
  const std::int64_t C = x.dim(-1), rows = rows_of(x);
  check_vector(gamma, C, "layer_norm", "gamma");
  check_vector(beta, C, "layer_norm", "beta");
  Tensor y = Tensor::empty(x.shape());
  const float* xd = x.data<float>();
  const float* g = gamma.defined() ? gamma.data<float>() : nullptr;
  const float* b = beta.defined() ? beta.data<float>() : nullptr;
  float* yd = y.data<float>();
  parallel_for(rows, 256, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t r = begin; r < end; ++r) {
      const float* row = xd + r * C;
      float* out = yd + r * C;
      // Two passes (mean, then centred squares): exact enough in fp32 for C <= a few thousand.
      float mean = 0;
      for (std::int64_t c = 0; c < C; ++c) mean += row[c];
      mean /= static_cast<float>(C);
      float var = 0;
      for (std::int64_t c = 0; c < C; ++c) var += (row[c] - mean) * (row[c] - mean);
      const float inv = 1.0f / std::sqrt(var / static_cast<float>(C) + eps);
      for (std::int64_t c = 0; c < C; ++c) {
        out[c] = (row[c] - mean) * inv * (g ? g[c] : 1.0f) + (b ? b[c] : 0.0f);
      }
    }
  });
  return y;
}

Tensor instance_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps,
                     const NormEpilogue& epilogue) {
  check_rank(x, 5, "instance_norm", "input");
  check_f32_cpu(x, "instance_norm", "input");
  const std::int64_t N = x.dim(0), C = x.dim(4), voxels = x.numel() / std::max<std::int64_t>(1, N * C);
  check_vector(gamma, C, "instance_norm", "gamma");
  check_vector(beta, C, "instance_norm", "beta");
  check_norm_epilogue(x, epilogue);
  Tensor y = Tensor::empty(x.shape());
  // The residual, instance-normalised first where the epilogue says so (on the CPU a pass of
  // its own, as before the epilogue took it).
  const Tensor normalised_residual = epilogue.residual_gamma.defined()
                                         ? cpu::instance_norm(epilogue.residual, epilogue.residual_gamma,
                                                              epilogue.residual_beta, eps, NormEpilogue{})
                                         : epilogue.residual;
  const float* residual = normalised_residual.defined() ? normalised_residual.data<float>() : nullptr;
  const float slope = epilogue.leaky_relu ? epilogue.leaky_slope : 1.0f;
  const float* xd = x.data<float>();
  float* yd = y.data<float>();
  const std::int64_t block = 4096;  // voxels per partial sum: keeps fp32 partials short
  const std::int64_t blocks = (voxels + block - 1) / block;
  std::vector<double> partial(static_cast<std::size_t>(blocks * C));
  for (std::int64_t n = 0; n < N; ++n) {
    const float* xn = xd + n * voxels * C;
    float* yn = yd + n * voxels * C;
    // Pass 1: means. Pass 2: centred variances. Partial sums per block of voxels, in double.
    auto reduce = [&](const std::vector<double>* mean) {
      parallel_for(blocks, 1, [&](std::int64_t b0, std::int64_t b1) {
        std::vector<float> acc(static_cast<std::size_t>(C));
        for (std::int64_t b = b0; b < b1; ++b) {
          std::fill(acc.begin(), acc.end(), 0.0f);
          const std::int64_t v1 = std::min(voxels, (b + 1) * block);
          for (std::int64_t v = b * block; v < v1; ++v) {
            const float* row = xn + v * C;
            if (mean) {
              for (std::int64_t c = 0; c < C; ++c) {
                const float centred = row[c] - static_cast<float>((*mean)[c]);
                acc[c] += centred * centred;
              }
            } else {
              for (std::int64_t c = 0; c < C; ++c) acc[c] += row[c];
            }
          }
          for (std::int64_t c = 0; c < C; ++c) partial[b * C + c] = acc[c];
        }
      });
      std::vector<double> total(static_cast<std::size_t>(C), 0.0);
      for (std::int64_t b = 0; b < blocks; ++b)
        for (std::int64_t c = 0; c < C; ++c) total[c] += partial[b * C + c];
      for (double& t : total) t /= static_cast<double>(voxels);
      return total;
    };
    const std::vector<double> mean = reduce(nullptr);
    const std::vector<double> var = reduce(&mean);
    std::vector<float> scale(static_cast<std::size_t>(C)), shift(static_cast<std::size_t>(C));
    for (std::int64_t c = 0; c < C; ++c) {
      const double inv = 1.0 / std::sqrt(var[c] + eps);
      const double g = gamma.defined() ? gamma.data<float>()[c] : 1.0;
      const double b = beta.defined() ? beta.data<float>()[c] : 0.0;
      scale[c] = static_cast<float>(inv * g);
      shift[c] = static_cast<float>(b - mean[c] * inv * g);
    }
    parallel_for(voxels, 1024, [&](std::int64_t v0, std::int64_t v1) {
      for (std::int64_t v = v0; v < v1; ++v)
        for (std::int64_t c = 0; c < C; ++c) {
          float value = xn[v * C + c] * scale[c] + shift[c];
          if (residual) value += residual[n * voxels * C + v * C + c];
          yn[v * C + c] = value < 0.0f ? value * slope : value;
        }
    });
  }
  return y;
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias, std::optional<DType> output,
              const Tensor& residual) {
  check_f32_cpu(x, "linear", "input");
  if (output && *output != DType::f32) throw Error("linear: the CPU writes float32 only");
  Tensor y = Tensor::empty(linear_output_shape(x, weight, bias));
  check_linear_residual(x, residual, y.shape(), DType::f32);
  const std::int64_t in = weight.dim(0), out = weight.dim(1), rows = rows_of(x);
  float* yd = y.data<float>();
  // The GEMM accumulates onto what y starts with: the residual, the bias, or their sum.
  if (residual.defined()) std::memcpy(yd, residual.data<float>(), sizeof(float) * rows * out);
  if (bias.defined()) {
    const float* b = bias.data<float>();
    if (residual.defined()) {
      parallel_for(rows, 1024, [&](std::int64_t r0, std::int64_t r1) {
        for (std::int64_t r = r0; r < r1; ++r)
          for (std::int64_t o = 0; o < out; ++o) yd[r * out + o] += b[o];
      });
    } else {
      for (std::int64_t r = 0; r < rows; ++r) std::memcpy(yd + r * out, b, sizeof(float) * out);
    }
  }
  parallel_gemm(x.data<float>(), weight.data<float>(), yd, rows, out, in, in, out, out,
                bias.defined() || residual.defined());
  return y;
}

Tensor concat_channels(const Tensor& a, const Tensor& b) {
  if (a.rank() != b.rank() || rows_of(a) != rows_of(b)) {
    throw Error("concat_channels: shapes " + shape_string(a.shape()) + " and " + shape_string(b.shape()) +
                " differ outside the last axis");
  }
  Shape shape = a.shape();
  const std::int64_t ca = a.dim(-1), cb = b.dim(-1), rows = rows_of(a);
  shape.back() = ca + cb;
  Tensor y = Tensor::empty(shape);
  const float* ad = a.data<float>();
  const float* bd = b.data<float>();
  float* yd = y.data<float>();
  parallel_for(rows, 1024, [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      std::memcpy(yd + r * (ca + cb), ad + r * ca, sizeof(float) * ca);
      std::memcpy(yd + r * (ca + cb) + ca, bd + r * cb, sizeof(float) * cb);
    }
  });
  return y;
}

Tensor softmax(const Tensor& x) {
  check_f32_cpu(x, "softmax", "input");
  const std::int64_t C = x.dim(-1), rows = rows_of(x);
  Tensor y = Tensor::empty(x.shape());
  const float* xd = x.data<float>();
  float* yd = y.data<float>();
  parallel_for(rows, 1024, [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      const float* row = xd + r * C;
      float* out = yd + r * C;
      const float peak = *std::max_element(row, row + C);
      float total = 0;
      for (std::int64_t c = 0; c < C; ++c) total += (out[c] = std::exp(row[c] - peak));
      for (std::int64_t c = 0; c < C; ++c) out[c] /= total;
    }
  });
  return y;
}

Tensor argmax(const Tensor& x) {
  check_f32_cpu(x, "argmax", "input");
  const std::int64_t C = x.dim(-1), rows = rows_of(x);
  Shape shape = x.shape();
  shape.pop_back();
  Tensor y = Tensor::empty(shape, DType::i32);
  const float* xd = x.data<float>();
  std::int32_t* yd = y.data<std::int32_t>();
  parallel_for(rows, 4096, [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      const float* row = xd + r * C;
      yd[r] = static_cast<std::int32_t>(std::max_element(row, row + C) - row);
    }
  });
  return y;
}

namespace {

// Converts every element of `x` (From) into `y` (To) with `convert`, in parallel.
template <typename From, typename To, typename Convert> void convert_elements(const Tensor& x, Tensor& y, Convert convert) {
  const From* in = x.data<From>();
  To* out = y.data<To>();
  parallel_for(x.numel(), kElementGrain, [&](std::int64_t i0, std::int64_t i1) {
    for (std::int64_t i = i0; i < i1; ++i) out[i] = convert(in[i]);
  });
}

}  // namespace

// The CPU computes in float32 only; 16-bit tensors exist here to be filled, uploaded or read.
Tensor cast(const Tensor& x, DType dtype) {
  if (x.dtype() == dtype) return x;
  Tensor y = Tensor::empty(x.shape(), dtype);
  if (x.dtype() == DType::f32 && dtype == DType::bf16) {
    convert_elements<float, BFloat16>(x, y, [](float v) { return to_bfloat16(v); });
  } else if (x.dtype() == DType::bf16 && dtype == DType::f32) {
    convert_elements<BFloat16, float>(x, y, [](BFloat16 v) { return to_float(v); });
  } else if (x.dtype() == DType::f32 && dtype == DType::f16) {
    convert_elements<float, Float16>(x, y, [](float v) { return to_float16(v); });
  } else if (x.dtype() == DType::f16 && dtype == DType::f32) {
    convert_elements<Float16, float>(x, y, [](Float16 v) { return to_float(v); });
  } else {
    throw Error(std::string("cast: between float32 and bfloat16 or float16 only, not ") + dtype_name(x.dtype()) +
                " to " + dtype_name(dtype));
  }
  return y;
}

// Row by row (whole rows are one copy when w is not flipped), any element type: voxels are
// moved as bytes.
Tensor flip(const Tensor& x, int axis_mask) {
  const FlipGeometry g = check_flip_args(x, axis_mask);
  if (!x.device().is_cpu()) throw Error("flip: expects a CPU tensor");
  const std::size_t voxel_bytes = static_cast<std::size_t>(g.channels) * dtype_size(x.dtype());
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  const auto* in = static_cast<const std::uint8_t*>(x.raw_data());
  auto* result = static_cast<std::uint8_t*>(out.raw_data());
  parallel_for(g.batch * g.depth * g.height, 16, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t row = begin; row < end; ++row) {
      const std::int64_t n = row / (g.depth * g.height), z = (row / g.height) % g.depth, y = row % g.height;
      const std::int64_t source_z = g.flip_d ? g.depth - 1 - z : z, source_y = g.flip_h ? g.height - 1 - y : y;
      const std::uint8_t* src = in + ((n * g.depth + source_z) * g.height + source_y) * g.width * voxel_bytes;
      std::uint8_t* dst = result + row * g.width * voxel_bytes;
      if (!g.flip_w) {
        std::memcpy(dst, src, g.width * voxel_bytes);
        continue;
      }
      for (std::int64_t w = 0; w < g.width; ++w) {
        std::memcpy(dst + w * voxel_bytes, src + (g.width - 1 - w) * voxel_bytes, voxel_bytes);
      }
    }
  });
  return out;
}

}  // namespace voxmamba::kernels::cpu
