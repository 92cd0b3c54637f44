// Convolutions on channels-last volumes on the GPU, float32, bfloat16 or float16 activations:
// - dense convs: for 16-bit types our tensor-core kernels where they apply (few input channels;
//   3^3 into 48 channels) and cuDNN (cudnn_conv.cu); im2col tiles and cuBLAS GEMMs for
//   float32 and for shapes cuDNN declines;
// - depthwise convs: depthwise_conv.cu (the deformable one: deform_conv.cu);
// - the k2 s2 transposed conv: one GEMM and a scatter.
#include <algorithm>
#include <type_traits>

#include "kernels/cuda/channel_moments.cuh"
#include "kernels/cuda/conv_geometry.cuh"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/cudnn_conv.cuh"
#include "kernels/cuda/depthwise_conv.cuh"
#include "kernels/cuda/gemm.cuh"
#include "kernels/cuda/narrow_input_conv_mma.cuh"
#include "kernels/cuda/resident_weight_conv_mma.cuh"
#include "kernels/op_checks.h"

namespace voxmamba::kernels::cuda {
namespace {

// columns[v - v0, (tap * cin_group + ci)] for output voxels [v0, v0 + rows) and group g.
template <typename T>
__global__ void im2col_kernel(const T* x, T* columns, ConvGeometry g, std::int64_t v0, std::int64_t rows,
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

// Calls launch(std::integral_constant<int, V>) with the widest channel vector that divides
// `channels`: 16 16-bit values (two 16-byte loads), else 16 bytes, else single channels. Wider
// vectors spread a voxel's per-tap work (indices, weights) over more channels.
template <typename T, typename F> void with_wide_vector(std::int64_t channels, F&& launch) {
  if (is_half_width<T> && channels % 16 == 0) {
    launch(std::integral_constant<int, 16>{});
  } else if (vector_width<T>(channels) > 1) {
    launch(std::integral_constant<int, 16 / sizeof(T)>{});
  } else {
    launch(std::integral_constant<int, 1>{});
  }
}

constexpr std::int64_t kNarrowInputChannels = 4;  // up to here a direct kernel beats im2col

template <typename T> __global__ void add_bias_kernel(T* y, const float* bias, std::int64_t total, std::int64_t c) {
  VOXMAMBA_GRID_STRIDE(i, total) { y[i] = from_f32<T>(to_f32(y[i]) + bias[i % c]); }
}

// Dense conv with few input channels (the stem and the first decoder conv read the
// one-channel image), on the CUDA cores: for float32, and where the tensor-core kernel
// (narrow_input_conv_mma.cu) does not apply. im2col would materialise K^3 columns per voxel
// for almost no arithmetic, so a thread computes V output channels of one voxel directly, reading each
// input value once for all of them. A block computes the V output channels that blockIdx.y
// picks, for consecutive voxels, with those channels' weights in shared memory as floats: each
// tap's weights are one broadcast read and each input value one coalesced load. Taps are
// unrolled for K = 3, 5 and 7 (K = 0: the kernel size at run time). Weights [K^3, Cin, Cout]
// (Cout a multiple of V). An earlier kernel that loaded and converted V 16-bit weights per tap
// from global memory, with runtime loop bounds and 64-bit index arithmetic, was slower (H200,
// base 128^3, float16: the stem (k7 s2, 1 -> 48 channels) 0.78 against 0.65 ms, the first
// decoder conv (k3, 1 -> 48 at 128^3) 0.59 against 0.40 ms).
template <typename T, int V, int K>
__global__ void __launch_bounds__(256)
    narrow_input_conv_kernel(const T* __restrict__ x, const T* __restrict__ weight,
                             const float* __restrict__ bias, T* __restrict__ y, ConvGeometry g) {
  extern __shared__ float taps[];  // [K^3 * Cin][V]: this block's output channels
  const int cin = static_cast<int>(g.C), cout = static_cast<int>(g.Co), o0 = blockIdx.y * V;
  const int kernel = K > 0 ? K : g.kernel;
  for (int j = threadIdx.x; j < kernel * kernel * kernel * cin * V; j += blockDim.x) {
    taps[j] = to_f32(weight[(j / V) * cout + o0 + j % V]);
  }
  __syncthreads();
  // 32-bit arithmetic within a sample (the caller checks its sizes).
  const int D = static_cast<int>(g.D), H = static_cast<int>(g.H), W = static_cast<int>(g.W);
  const int Ho = static_cast<int>(g.Ho), Wo = static_cast<int>(g.Wo), per_sample = static_cast<int>(g.Do) * Ho * Wo;
  const std::int64_t voxels = g.N * per_sample;
  for (std::int64_t v = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; v < voxels;
       v += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t n = v / per_sample;
    const int r = static_cast<int>(v - n * per_sample), ow = r % Wo, oh = r / Wo % Ho, od = r / (Wo * Ho);
    float acc[V];
#pragma unroll
    for (int k = 0; k < V; ++k) acc[k] = bias ? bias[o0 + k] : 0.0f;
    const T* sample = x + n * D * H * W * cin;
    const int d0 = od * g.stride - g.padding, h0 = oh * g.stride - g.padding, w0 = ow * g.stride - g.padding;
    for (int kd = 0; kd < kernel; ++kd) {
      const int d = d0 + kd * g.dilation;
      if (d < 0 || d >= D) continue;
#pragma unroll
      for (int kh = 0; kh < kernel; ++kh) {
        const int h = h0 + kh * g.dilation;
        if (h < 0 || h >= H) continue;
#pragma unroll
        for (int kw = 0; kw < kernel; ++kw) {
          const int w = w0 + kw * g.dilation;
          if (w < 0 || w >= W) continue;
          const T* in = sample + ((d * H + h) * W + w) * cin;
          const float* tap = taps + ((kd * kernel + kh) * kernel + kw) * cin * V;
          for (int ci = 0; ci < cin; ++ci) {
            const float value = to_f32(in[ci]);
#pragma unroll
            for (int k = 0; k < V; ++k) acc[k] += value * tap[ci * V + k];
          }
        }
      }
    }
    Vec<T, V> out;
#pragma unroll
    for (int k = 0; k < V; ++k) out.v[k] = acc[k];
    out.store(y + v * cout + o0);
  }
}

// Launches the narrow-input kernel; false when its weights do not fit in the shared memory a
// block may opt in to (about 227 KB on an H100: K = 7 with 16 output channels a block takes
// 22 KB per input channel), or an output sample has 2^31 voxels or more. The caller then
// takes the general path.
template <typename T, int V>
bool launch_narrow_input(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& y,
                         const ConvGeometry& g) {
  const std::size_t bytes = static_cast<std::size_t>(g.kernel) * g.kernel * g.kernel * g.C * V * sizeof(float);
  if (bytes > static_cast<std::size_t>(shared_memory_per_block_optin()) ||
      g.Do * g.Ho * g.Wo >= (std::int64_t(1) << 31)) {
    return false;
  }
  const dim3 grid(blocks_for(g.N * g.Do * g.Ho * g.Wo), static_cast<unsigned int>(g.Co / V));
  const auto run = [&](auto size) {
    const auto kernel = narrow_input_conv_kernel<T, V, decltype(size)::value>;
    if (bytes > 48 * 1024) {  // beyond the default limit a launch must ask for it
      check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)),
                 "conv3d narrow input shared memory");
    }
    kernel<<<grid, kThreads, bytes, stream()>>>(ptr_as<T>(x), ptr_as<T>(weight), ptr(bias),
                                                mutable_ptr_as<T>(y), g);
  };
  if (g.kernel == 3) {
    run(std::integral_constant<int, 3>{});
  } else if (g.kernel == 5) {
    run(std::integral_constant<int, 5>{});
  } else if (g.kernel == 7) {
    run(std::integral_constant<int, 7>{});
  } else {
    run(std::integral_constant<int, 0>{});
  }
  return true;
}

// y's rows, row by row of output voxels: blocks[v, sub, :] plus the bias (sub = the d, h, w
// bits of the voxel within its input voxel v's 2x2x2 block), then, when `skip` is given, the
// skip's row (cskip channels). A thread moves V channels (16 bytes when the rows allow;
// element-at-a-time, the scatter took longer than its GEMM) and y is written in order. Blocks
// walk (n, od) along z and oh along y, so that a thread divides only within its line of
// voxels, in 32 bits. Writing the concatenation here replaces a scatter and a concat pass:
// H200, base 128^3, fp16 (ncu), at 128^3 the scatter took 175 us and the concat 255 us; this
// kernel with 64-bit divisions for every coordinate 367 us (2.2 TB/s, bound by them), as it
// is 253 us (3.2 TB/s).
template <int V, typename T>
__global__ void scatter_blocks_kernel(const T* __restrict__ blocks, const float* __restrict__ bias,
                                      const T* __restrict__ skip, T* __restrict__ y, int N, int D, int H,
                                      int W, int cout, int cskip) {
  const int up_vectors = cout / V, row_vectors = (cout + cskip) / V, line = 2 * W * row_vectors;
  for (int nd = blockIdx.z; nd < N * 2 * D; nd += gridDim.z) {
    const int n = nd / (2 * D), od = nd % (2 * D);
    for (int oh = blockIdx.y; oh < 2 * H; oh += gridDim.y) {
      const std::int64_t first_voxel = (static_cast<std::int64_t>(nd) * 2 * H + oh) * 2 * W;  // of y's line
      const std::int64_t blocks_line =
          ((static_cast<std::int64_t>(n) * D + od / 2) * H + oh / 2) * W;  // input voxels
      for (int r = blockIdx.x * blockDim.x + threadIdx.x; r < line; r += gridDim.x * blockDim.x) {
        const int ow = r / row_vectors, j = r % row_vectors;
        Vec<T, V> value;
        if (j < up_vectors) {
          const int sub = (od % 2) * 4 + (oh % 2) * 2 + ow % 2, c = j * V;
          value.load(blocks + ((blocks_line + ow / 2) * 8 + sub) * cout + c);
          if (bias) {
#pragma unroll
            for (int k = 0; k < V; ++k) value.v[k] += bias[c + k];
          }
        } else {
          value.load(skip + (first_voxel + ow) * cskip + (j - up_vectors) * V);
        }
        value.store(y + (first_voxel * row_vectors + r) * V);
      }
    }
  }
}

// Dense or grouped conv as im2col tiles and GEMMs, accumulated onto y (which holds the bias).
template <typename T> void im2col_conv3d(const Tensor& x, const Tensor& weight, Tensor& y, const ConvParams& p) {
  const ConvGeometry g = conv_geometry(x.shape(), y.shape(), p);
  const std::int64_t cin_group = g.C / p.groups, cout_group = g.Co / p.groups;
  const std::int64_t patch = static_cast<std::int64_t>(p.kernel) * p.kernel * p.kernel * cin_group;
  const std::int64_t voxels = g.N * g.Do * g.Ho * g.Wo;
  // Tiles of at most 64 Mi column entries bound the im2col buffer.
  const std::int64_t tile = std::max<std::int64_t>(1, std::min<std::int64_t>(voxels, (std::int64_t(64) << 20) / patch));
  Tensor columns = Tensor::empty({tile * patch}, x.dtype(), x.device());
  for (std::int64_t v0 = 0; v0 < voxels; v0 += tile) {
    const std::int64_t rows = std::min(tile, voxels - v0);
    for (std::int64_t group = 0; group < p.groups; ++group) {
      im2col_kernel<T><<<blocks_for(rows * patch), kThreads, 0, stream()>>>(
          ptr_as<T>(x), mutable_ptr_as<T>(columns), g, v0, rows, cin_group, group);
      check_launch("conv3d im2col");
      gemm(x.dtype(), columns.raw_data(), ptr_as<T>(weight) + group * cout_group,
           mutable_ptr_as<T>(y) + v0 * g.Co + group * cout_group, rows, cout_group, patch, patch, g.Co, g.Co, true);
    }
  }
}

// conv3d's argument checks, in its order; returns the output's shape.
Shape checked_conv3d_output_shape(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                  const ConvParams& p) {
  const Shape out_shape = conv3d_output_shape(x, weight, bias, p);
  require_cuda_float(x, "conv3d", "input");
  require_cuda_float(weight, "conv3d", "weight");
  require_cuda_f32(bias, "conv3d", "bias");
  const ConvGeometry g = conv_geometry(x.shape(), out_shape, p);
  if (is_depthwise(g.C, g.Co, p)) {
    require_cuda_f32(weight, "conv3d", "depthwise weight");
  } else {
    require_same_dtype(x, weight, "conv3d", "weight");
  }
  return out_shape;
}

// conv3d into `out_shape`, from checked_conv3d_output_shape; with `moments`, where the conv's
// kernel can gather the output's instance-norm statistics as it writes it
// (resident_weight_conv_mma), *moments receives them.
Tensor convolve(const Tensor& x, const Tensor& weight, const Tensor& bias, const ConvParams& p,
                const Shape& out_shape, MomentPartials* moments) {
  Tensor y = empty_like_device(out_shape, x);
  const ConvGeometry g = conv_geometry(x.shape(), out_shape, p);
  if (is_depthwise(g.C, g.Co, p)) {
    depthwise_conv3d(x, weight, bias, y, g);
    return y;
  }
  with_float_type(x.dtype(), "conv3d", [&](auto tag) {
    using T = decltype(tag);
    if (p.groups == 1 && g.C <= kNarrowInputChannels &&
        x.numel() / std::max<std::int64_t>(1, g.N) < (std::int64_t(1) << 31)) {
      // Tensor cores where they apply (16-bit types, output channels in multiples of 8).
      if (narrow_input_conv_mma(x, weight, bias, y, p)) return;
      // Wide vectors: each input value read once serves 16 output channels in 16-bit types.
      bool done = false;
      const auto launch = [&](auto width) {
        done = launch_narrow_input<T, decltype(width)::value>(x, weight, bias, y, g);
      };
      with_wide_vector<T>(g.Co, launch);
      check_launch("conv3d narrow input");
      if (done) return;
    }
    // 3^3 convs into 48 channels, whose weight fits in a block's shared memory: our own tensor-core
    // kernel, where cuDNN's tiles would pad a quarter of the columns and of the reduction.
    if (resident_weight_conv_mma(x, weight, bias, y, p, moments)) return;
    // cuDNN's tensor-core kernels want channel counts in multiples of 8.
    const bool try_cudnn = is_half_width<T> && (g.C / p.groups) % 8 == 0 && (g.Co / p.groups) % 8 == 0;
    if (try_cudnn && cudnn_conv3d(x, weight, y, p)) {
      if (bias.defined()) {
        add_bias_kernel<T><<<blocks_for(y.numel()), kThreads, 0, stream()>>>(mutable_ptr_as<T>(y), ptr(bias),
                                                                             y.numel(), g.Co);
        check_launch("conv3d bias");
      }
      return;
    }
    const std::int64_t voxels = y.numel() / g.Co;
    if (bias.defined()) {
      fill_rows_with_bias(x.dtype(), ptr(bias), y.raw_data(), voxels, g.Co);
    } else {
      check_cuda(cudaMemsetAsync(y.raw_data(), 0, y.bytes(), stream()), "conv3d zero output");
    }
    im2col_conv3d<T>(x, weight, y, p);
  });
  return y;
}

}  // namespace

Tensor conv3d(const Tensor& x, const Tensor& weight, const Tensor& bias, const ConvParams& p) {
  return convolve(x, weight, bias, p, checked_conv3d_output_shape(x, weight, bias, p), nullptr);
}

Tensor conv3d_instance_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const ConvParams& p,
                            const Tensor& gamma, const Tensor& beta, float eps,
                            const NormEpilogue& epilogue) {
  // Where the conv's kernel gathers the statistics (the resident-weight conv), the norm's own
  // pass over the output is not needed. H200, base 128^3, fp16 (ncu, one run): that pass took
  // 63-65 us (and its finish 7 us) after each of the four resident convs at 128^3 x 48, which
  // went from 733 to 767-774 us with the sums (and 6 us to finish them). The forward with the
  // graph, two rounds in one build against the conv and the norm apart: fp16 30.15 / 30.16 ->
  // 30.02 / 30.00 ms, bf16 30.24 / 30.15 -> 30.10 / 30.06 ms. That build also had the
  // narrow-input conv (enc0's first, 1 -> 48 at 128^3) summing, which cost more than it saved
  // and was dropped: 187 -> 297 us, its registers 57 -> 113, against a 67 us pass.
  const Shape out_shape = checked_conv3d_output_shape(x, weight, bias, p);
  // The norm's affine is checked before the conv runs, with the norm's messages, so that a
  // misfit costs no GPU work; its residual is checked by the norm, against the conv's output.
  require_cuda_f32(gamma, "instance_norm", "gamma");
  require_cuda_f32(beta, "instance_norm", "beta");
  check_vector(gamma, out_shape[4], "instance_norm", "gamma");
  check_vector(beta, out_shape[4], "instance_norm", "beta");
  MomentPartials moments;
  const Tensor y = convolve(x, weight, bias, p, out_shape, &moments);
  if (!moments.triples.defined()) return cuda::instance_norm(y, gamma, beta, eps, epilogue);
  return instance_norm_with_stats(y, finish_channel_moments(moments, eps), gamma, beta, eps, epilogue);
}

Tensor conv_transpose3d_k2s2(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& skip) {
  Shape out_shape = conv_transpose3d_output_shape(x, weight, bias, skip);
  require_cuda_float(x, "conv_transpose3d", "input");
  require_cuda_float(weight, "conv_transpose3d", "weight");
  require_same_dtype(x, weight, "conv_transpose3d", "weight");
  require_cuda_f32(bias, "conv_transpose3d", "bias");
  require_cuda_float(skip, "conv_transpose3d", "skip");  // both pass an absent skip
  require_same_dtype(x, skip, "conv_transpose3d", "skip");
  const std::int64_t voxels = x.numel() / x.dim(4), cout = out_shape[4],
                     cskip = skip.defined() ? skip.dim(4) : 0;
  out_shape[4] = cout + cskip;
  // The scatter's coordinates are 32-bit: N * 2D planes, 2H lines, a line's 2W (cout + cskip) values.
  constexpr std::int64_t kLimit = std::int64_t(1) << 31;
  if (2 * x.dim(0) * x.dim(1) >= kLimit || 2 * x.dim(2) >= kLimit ||
      2 * x.dim(3) * (cout + cskip) >= kLimit) {
    throw Error("conv_transpose3d: the output " + shape_string(out_shape) +
                " is too large for the GPU scatter");
  }
  Tensor blocks = Tensor::empty({voxels, 8 * cout}, x.dtype(), x.device());
  gemm(x.dtype(), x.raw_data(), weight.raw_data(), blocks.raw_data(), voxels, 8 * cout, x.dim(4), x.dim(4), 8 * cout,
       8 * cout, false);
  Tensor y = empty_like_device(out_shape, x);
  if (y.numel() == 0) return y;
  with_float_type(x.dtype(), "conv_transpose3d", [&](auto tag) {
    using T = decltype(tag);
    constexpr int V = 16 / sizeof(T);
    const auto launch = [&](auto width) {
      constexpr int Width = decltype(width)::value;
      const std::int64_t line = 2 * x.dim(3) * ((cout + cskip) / Width);
      const dim3 grid(blocks_for(line),
                      static_cast<unsigned int>(std::min<std::int64_t>(2 * x.dim(2), 65535)),
                      static_cast<unsigned int>(std::min<std::int64_t>(2 * x.dim(0) * x.dim(1), 65535)));
      scatter_blocks_kernel<Width, T><<<grid, kThreads, 0, stream()>>>(
          ptr_as<T>(blocks), ptr(bias), ptr_as<T>(skip), mutable_ptr_as<T>(y), static_cast<int>(x.dim(0)),
          static_cast<int>(x.dim(1)), static_cast<int>(x.dim(2)), static_cast<int>(x.dim(3)),
          static_cast<int>(cout), static_cast<int>(cskip));
    };
    if (vector_width<T>(cout) > 1 && cskip % V == 0 && is_aligned16(blocks.raw_data()) &&
        is_aligned16(skip.raw_data()) && is_aligned16(y.raw_data())) {
      launch(std::integral_constant<int, V>{});
    } else {
      launch(std::integral_constant<int, 1>{});
    }
  });
  check_launch("conv_transpose3d scatter");
  return y;
}

}  // namespace voxmamba::kernels::cuda
