// Layer norm (a group of threads or a warp per token) and instance norm on the GPU, for
// float32 and 16-bit activations with float32 statistics.
//
// Instance norm takes one pass for its statistics: each thread sums a strip of voxels of one
// vector of channels in float32, shifted by each channel's first voxel so that sum and sum
// of squares do not cancel; strips are combined in double in a fixed order (deterministic),
// and a second kernel normalises, with the residual add and LeakyReLU of NormEpilogue.
#include <algorithm>
#include <type_traits>

#include "kernels/cuda/channel_moments.cuh"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/op_checks.h"

namespace voxmamba::kernels::cuda {
namespace {

__device__ float warp_sum(float value) {
  for (int offset = 16; offset > 0; offset /= 2) value += __shfl_xor_sync(0xffffffffu, value, offset);
  return value;
}

template <typename T>
__global__ void layer_norm_kernel(const T* x, const float* gamma, const float* beta, T* y, std::int64_t rows,
                                  std::int64_t c, float eps) {
  const std::int64_t row = (blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const T* in = x + row * c;
  float sum = 0.0f;
  for (std::int64_t k = lane; k < c; k += 32) sum += to_f32(in[k]);
  const float mean = warp_sum(sum) / static_cast<float>(c);
  float squares = 0.0f;
  for (std::int64_t k = lane; k < c; k += 32) {
    const float centred = to_f32(in[k]) - mean;
    squares += centred * centred;
  }
  const float inv = rsqrtf(warp_sum(squares) / static_cast<float>(c) + eps);
  for (std::int64_t k = lane; k < c; k += 32) {
    const float value = (to_f32(in[k]) - mean) * inv * (gamma ? gamma[k] : 1.0f) + (beta ? beta[k] : 0.0f);
    y[row * c + k] = from_f32<T>(value);
  }
}

// Sum over aligned groups of G lanes (a power of two up to 32); every lane of the warp calls it.
template <int G>
__device__ float group_sum(float value) {
  for (int offset = G / 2; offset > 0; offset /= 2) value += __shfl_xor_sync(0xffffffffu, value, offset);
  return value;
}

// Layer norm of rows of at most 32 channel vectors (C <= 256 in 16-bit types, every C of the
// base network but its bottleneck): G threads a row (a power of two >= C / V) each hold one
// vector in registers, so a row is read once, in 16-byte loads. The warp-per-row kernel above
// reads one element a thread, which kept 6 of 32 threads busy on a 48-channel 16-bit row.
template <typename T, int V, int G>
__global__ void layer_norm_vector_kernel(const T* x, const float* gamma, const float* beta, T* y,
                                         std::int64_t rows, std::int64_t c, float eps) {
  const std::int64_t row = (blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x) / G;
  const std::int64_t c0 = static_cast<std::int64_t>(threadIdx.x % G) * V;
  const bool active = row < rows && c0 < c;
  Vec<T, V> value;
  float sum = 0.0f;
  if (active) {
    value.load(x + row * c + c0);
#pragma unroll
    for (int k = 0; k < V; ++k) sum += value.v[k];
  }
  const float mean = group_sum<G>(sum) / static_cast<float>(c);
  float squares = 0.0f;
  if (active) {
#pragma unroll
    for (int k = 0; k < V; ++k) squares += (value.v[k] - mean) * (value.v[k] - mean);
  }
  const float inv = rsqrtf(group_sum<G>(squares) / static_cast<float>(c) + eps);
  if (!active) return;
#pragma unroll
  for (int k = 0; k < V; ++k) {
    value.v[k] = (value.v[k] - mean) * inv * (gamma ? gamma[c0 + k] : 1.0f) + (beta ? beta[c0 + k] : 0.0f);
  }
  value.store(y + row * c + c0);
}

// The smallest group of G <= 32 threads that covers C / V vectors.
template <typename T, int V, int G>
void launch_layer_norm_vectors(const T* x, const float* gamma, const float* beta, T* y, std::int64_t rows,
                               std::int64_t c, float eps) {
  if constexpr (G > 2) {
    if (c / V <= G / 2) return launch_layer_norm_vectors<T, V, G / 2>(x, gamma, beta, y, rows, c, eps);
  }
  layer_norm_vector_kernel<T, V, G>
      <<<blocks_for(rows * G), kThreads, 0, stream()>>>(x, gamma, beta, y, rows, c, eps);
}

// Instance-norm threads own a vector of V channels (16 bytes) of one voxel; a block of 256
// threads covers up to 256 vectors of a row and steps over voxels in `lanes` = 256 / vectors
// lanes, so C = 48 in bfloat16 (six vectors) keeps 252 of 256 threads busy.
constexpr int kNormThreads = 256;

struct NormLayout {
  int vectors;  // channel vectors in a block (all of them when C / V <= 256)
  int lanes;    // voxel lanes of a block
  int groups;   // blocks across a voxel's C / V vectors
};

NormLayout norm_layout(std::int64_t c, int V) {
  const int vectors = static_cast<int>(std::min<std::int64_t>(c / V, kNormThreads));
  return {vectors, kNormThreads / vectors, static_cast<int>((c / V + vectors - 1) / vectors)};
}

// How many blocks of `kernel` each (sample, vector group) pair gets in one wave of the blocks
// the GPU holds at once: the statistics and the normalising launch both size their grids in
// such waves.
template <typename Kernel>
std::int64_t blocks_per_group_in_wave(Kernel kernel, const NormLayout& layout, std::int64_t samples) {
  return std::max<std::int64_t>(1, resident_blocks(kernel, kNormThreads) / (layout.groups * samples));
}

// Block (vector group blockIdx.x, split blockIdx.y, sample blockIdx.z):
// partial[(n * c + channel) * splits + split] = (sum, sum of squares) of x - x[first voxel].
template <typename T, int V>
__global__ void __launch_bounds__(kNormThreads)
    instance_stats_kernel(const T* x, double2* partial, std::int64_t voxels, std::int64_t c, int splits, NormLayout layout) {
  __shared__ float2 lane_sums[kNormThreads][V];
  const int vector = threadIdx.x % layout.vectors, lane = threadIdx.x / layout.vectors;
  const std::int64_t c0 = (static_cast<std::int64_t>(blockIdx.x) * layout.vectors + vector) * V;
  const int split = blockIdx.y, n = blockIdx.z;
  const bool active = lane < layout.lanes && c0 < c;
  float sum[V], squares[V];
#pragma unroll
  for (int k = 0; k < V; ++k) sum[k] = 0.0f, squares[k] = 0.0f;
  if (active) {
    const T* xn = x + n * voxels * c + c0;
    Vec<T, V> shift;
    shift.load(xn);
    const std::int64_t per_split = (voxels + splits - 1) / splits;
    const std::int64_t v0 = split * per_split, v1 = min(voxels, v0 + per_split);
    for (std::int64_t v = v0 + lane; v < v1; v += layout.lanes) {
      Vec<T, V> value;
      value.load(xn + v * c);
#pragma unroll
      for (int k = 0; k < V; ++k) {
        const float centred = value.v[k] - shift.v[k];
        sum[k] += centred;
        squares[k] += centred * centred;
      }
    }
  }
#pragma unroll
  for (int k = 0; k < V; ++k) lane_sums[threadIdx.x][k] = make_float2(sum[k], squares[k]);
  __syncthreads();
  // Channel j of the block is summed over the lanes, in double, by thread j (mod 256).
  for (int j = threadIdx.x; j < layout.vectors * V; j += kNormThreads) {
    const std::int64_t channel = static_cast<std::int64_t>(blockIdx.x) * layout.vectors * V + j;
    if (channel >= c) break;
    double2 total = make_double2(0.0, 0.0);
    for (int l = 0; l < layout.lanes; ++l) {
      const float2 part = lane_sums[l * layout.vectors + j / V][j % V];
      total.x += part.x, total.y += part.y;
    }
    partial[(static_cast<std::int64_t>(n) * c + channel) * splits + split] = total;
  }
}

// stats[n * c + channel] = (mean, 1 / sqrt(var + eps)). A warp per (sample, channel) sums
// its splits in double, lane l taking splits l, l + 32, ..., then a fixed shuffle tree, so
// the result does not depend on scheduling. (One thread summing a channel's ~800 splits in
// turn, as before, waited on ~800 dependent loads per 128^3 call.)
template <typename T>
__global__ void instance_finish_kernel(const T* x, const double2* partial, float2* stats, std::int64_t voxels,
                                       std::int64_t c, int splits, std::int64_t count, float eps) {
  // i = n * c + channel, the same across a warp, so whole warps return together.
  const std::int64_t i = (blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (i >= count) return;
  double sum = 0.0, squares = 0.0;
  for (int s = lane; s < splits; s += 32) {
    const double2 p = partial[i * splits + s];
    sum += p.x, squares += p.y;
  }
  for (int offset = 16; offset > 0; offset /= 2) {
    sum += __shfl_xor_sync(0xffffffffu, sum, offset);
    squares += __shfl_xor_sync(0xffffffffu, squares, offset);
  }
  if (lane != 0) return;
  const std::int64_t n = i / c, channel = i % c;
  const double shifted_mean = sum / static_cast<double>(voxels);
  const double var = max(0.0, squares / static_cast<double>(voxels) - shifted_mean * shifted_mean);
  const double mean = static_cast<double>(to_f32(x[n * voxels * c + channel])) + shifted_mean;
  stats[i] = make_float2(static_cast<float>(mean), static_cast<float>(rsqrt(var + static_cast<double>(eps))));
}

// The norm of V channels from c0 of one sample, (x - mean) * scale + shift: 1/std and gamma
// folded into one scale, shift being beta (0 without one); `stats` points at the first
// channel's (mean, 1/std).
template <int V>
struct ChannelNorm {
  float mean[V], scale[V], shift[V];
  ChannelNorm() = default;
  __device__ ChannelNorm(const float2* stats, const float* gamma, const float* beta, std::int64_t c0) {
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const float2 s = stats[k];
      mean[k] = s.x;
      scale[k] = s.y * (gamma ? gamma[c0 + k] : 1.0f);
      shift[k] = beta ? beta[c0 + k] : 0.0f;
    }
  }
  __device__ float apply(int k, float x) const { return (x - mean[k]) * scale[k] + shift[k]; }
};

// y = act(norm(x) + residual), the residual normalised first with its own statistics and
// affine where NormalisedResidual (NormEpilogue's residual_gamma and residual_beta). Threads
// are laid out as in the statistics kernel (a fixed vector of V channels, voxels in lanes;
// blockIdx.y is the sample), so each thread folds its channels' 1/std and gamma into one
// scale before the loop, and the loop has no index divisions. (x - mean) * scale + beta
// rather than x * scale + shift: the subtraction first keeps float32's precision when the
// mean is large against the spread. Folding the residual's norm in (H200, base 128^3, fp16
// ncu) takes this pass from 111 to 170 us at 128^3 and removes the skip's own normalising
// pass (111 us, a read and a write); the forward with the graph, two rounds interleaved with
// the unfolded build, went from 31.59 / 31.60 to 31.33 / 31.30 ms in fp16 and from
// 31.93 / 31.92 to 31.72 / 31.65 ms in bf16.
// Measured and dropped: both loops unrolled by 4, with restrict pointers so that four voxels'
// loads are in flight before the stores (H200, base 128^3 with the graph, float16 forward
// 33.44 -> 33.47 ms, bfloat16 33.82 -> 33.83).
template <typename T, int V, bool NormalisedResidual>
__global__ void __launch_bounds__(kNormThreads)
    instance_normalize_kernel(const T* x, const float2* stats, const float* gamma, const float* beta,
                              const T* residual, const float2* residual_stats, const float* residual_gamma,
                              const float* residual_beta, float slope, T* y, std::int64_t voxels,
                              std::int64_t c, NormLayout layout) {
  const int vector = threadIdx.x % layout.vectors, lane = threadIdx.x / layout.vectors;
  const std::int64_t c0 = (static_cast<std::int64_t>(blockIdx.z) * layout.vectors + vector) * V;
  if (lane >= layout.lanes || c0 >= c) return;
  const std::int64_t n = blockIdx.y;
  const ChannelNorm<V> norm(stats + n * c + c0, gamma, beta, c0);
  ChannelNorm<V> residual_norm;
  if constexpr (NormalisedResidual)
    residual_norm = ChannelNorm<V>(residual_stats + n * c + c0, residual_gamma, residual_beta, c0);
  const std::int64_t sample = n * voxels * c + c0;
  for (std::int64_t v = static_cast<std::int64_t>(blockIdx.x) * layout.lanes + lane; v < voxels;
       v += static_cast<std::int64_t>(gridDim.x) * layout.lanes) {
    const std::int64_t at = sample + v * c;
    Vec<T, V> value, skip;
    value.load(x + at);
    if (residual) skip.load(residual + at);
#pragma unroll
    for (int k = 0; k < V; ++k) {
      float out = norm.apply(k, value.v[k]);
      if constexpr (NormalisedResidual) {
        out += residual_norm.apply(k, skip.v[k]);
      } else if (residual) {
        out += skip.v[k];
      }
      value.v[k] = out < 0.0f ? out * slope : out;
    }
    value.store(y + at);
  }
}

// The statistics of x: (mean, 1 / sqrt(var + eps)) per sample and channel, float2 each.
template <typename T, int V>
Tensor instance_stats(const Tensor& x, float eps) {
  const std::int64_t N = x.dim(0), c = x.dim(4), voxels = x.numel() / (N * c);
  const NormLayout layout = norm_layout(c, V);
  const auto kernel = instance_stats_kernel<T, V>;
  // Splits: blocks of a sample's vector group, each a strip of voxels, in whole waves of the
  // blocks the GPU holds at once (resident_blocks): about 32 voxels a thread, rounded to whole
  // waves, or one wave with at least 4 voxels a thread on small volumes. H200, base 128^3, fp16
  // (ncu, one run; 660 blocks a wave): at 128^3 x 48 channels 1560 blocks (2.36 waves, the
  // last a third full) took 67 us, 1320 take 59 (3.4 TB/s); at 64^3 x 96 390 blocks (before:
  // 32 voxels a thread, or two blocks a multiprocessor on small volumes) took 21.5 us, 660
  // take 17.5; the 36 passes of a forward 843 -> 742 us. (Earlier: 1.39 ms at 64 voxels a
  // thread, 0.99 ms with the small volumes split, 0.86 ms at 32 voxels a thread.)
  constexpr std::int64_t kMostSplits = 2048;
  const std::int64_t per_wave = blocks_per_group_in_wave(kernel, layout, N);
  const std::int64_t waves =
      std::clamp<std::int64_t>((voxels / (layout.lanes * 32) + per_wave / 2) / per_wave, 1,
                               std::max<std::int64_t>(1, kMostSplits / per_wave));
  const std::int64_t most = std::max<std::int64_t>(1, voxels / (layout.lanes * 4));
  const int splits = static_cast<int>(std::min({per_wave * waves, most, kMostSplits}));
  Tensor partial = Tensor::empty({N * splits * c * 4}, DType::f32, x.device());  // double2 each
  Tensor stats = Tensor::empty({N * c * 2}, DType::f32, x.device());             // float2 each
  double2* partial_d = static_cast<double2*>(partial.raw_data());
  const dim3 grid(static_cast<unsigned int>(layout.groups), splits, static_cast<unsigned int>(N));
  kernel<<<grid, kNormThreads, 0, stream()>>>(ptr_as<T>(x), partial_d, voxels, c, splits, layout);
  instance_finish_kernel<T><<<blocks_for(N * c * 32), kThreads, 0, stream()>>>(
      ptr_as<T>(x), partial_d, static_cast<float2*>(stats.raw_data()), voxels, c, splits, N * c, eps);
  return stats;
}

// `known_stats`, where defined, are x's statistics as instance_stats gives them (gathered by
// the kernel that wrote x: channel_moments.cuh), and x is not read for them again.
template <typename T, int V>
void launch_instance_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps,
                          const NormEpilogue& epilogue, float slope, const Tensor& known_stats, Tensor& y) {
  const std::int64_t N = x.dim(0), c = x.dim(4), voxels = x.numel() / (N * c);
  const NormLayout layout = norm_layout(c, V);
  const Tensor stats = known_stats.defined() ? known_stats : instance_stats<T, V>(x, eps);
  const bool normalised_residual = epilogue.residual_gamma.defined();
  const Tensor residual_stats = normalised_residual ? instance_stats<T, V>(epilogue.residual, eps) : Tensor();
  const auto stats_of = [](const Tensor& t) {
    return t.defined() ? static_cast<const float2*>(t.raw_data()) : nullptr;
  };
  const auto normalize = [&](auto normalised) {
    const auto kernel = instance_normalize_kernel<T, V, decltype(normalised)::value>;
    // x: blocks of 8 voxels a thread, at most one wave of them (resident_blocks), which then
    // walks the voxels in a grid-stride loop; y: samples; z: groups of channel vectors. H200,
    // fp16 (ncu, one run), at 128^3 x 48: 4096 blocks (6.2 waves of 660) took 110 us, one wave
    // 106; with the residual's norm (3 blocks a multiprocessor) 168 -> 159 us. One voxel a
    // thread on the small volumes was slower (11.1 -> 12.1 us at 32^3 x 192), so they keep 8.
    const std::int64_t per_wave = blocks_per_group_in_wave(kernel, layout, N);
    const std::int64_t voxel_blocks =
        std::clamp<std::int64_t>((voxels + layout.lanes * 8 - 1) / (layout.lanes * 8), 1, per_wave);
    const dim3 normalize_grid(static_cast<unsigned int>(voxel_blocks), static_cast<unsigned int>(N),
                              static_cast<unsigned int>(layout.groups));
    kernel<<<normalize_grid, kNormThreads, 0, stream()>>>(
        ptr_as<T>(x), stats_of(stats), ptr(gamma), ptr(beta), ptr_as<T>(epilogue.residual),
        stats_of(residual_stats), ptr(epilogue.residual_gamma), ptr(epilogue.residual_beta), slope,
        mutable_ptr_as<T>(y), voxels, c, layout);
  };
  if (normalised_residual) {
    normalize(std::true_type{});
  } else {
    normalize(std::false_type{});
  }
}

}  // namespace

Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps) {
  require_cuda_float(x, "layer_norm", "input");
  require_cuda_f32(gamma, "layer_norm", "gamma");
  require_cuda_f32(beta, "layer_norm", "beta");
  const std::int64_t c = x.dim(-1), rows = x.numel() / c;
  check_vector(gamma, c, "layer_norm", "gamma");
  check_vector(beta, c, "layer_norm", "beta");
  Tensor y = empty_like_device(x.shape(), x);
  with_float_type(x.dtype(), "layer_norm", [&](auto tag) {
    using T = decltype(tag);
    constexpr int V = 16 / sizeof(T);
    if (c % V == 0 && c / V <= 32 && is_aligned16(x.raw_data()) && is_aligned16(y.raw_data())) {
      launch_layer_norm_vectors<T, V, 32>(ptr_as<T>(x), ptr(gamma), ptr(beta), mutable_ptr_as<T>(y), rows, c, eps);
    } else {
      layer_norm_kernel<T><<<blocks_for(rows * 32), kThreads, 0, stream()>>>(
          ptr_as<T>(x), ptr(gamma), ptr(beta), mutable_ptr_as<T>(y), rows, c, eps);
    }
  });
  check_launch("layer_norm");
  return y;
}

namespace {

Tensor normalise(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps,
                 const NormEpilogue& epilogue, const Tensor& known_stats) {
  check_rank(x, 5, "instance_norm", "input");
  require_cuda_float(x, "instance_norm", "input");
  require_cuda_f32(gamma, "instance_norm", "gamma");
  require_cuda_f32(beta, "instance_norm", "beta");
  require_cuda_f32(epilogue.residual_gamma, "instance_norm", "residual gamma");
  require_cuda_f32(epilogue.residual_beta, "instance_norm", "residual beta");
  const std::int64_t c = x.dim(4);
  check_vector(gamma, c, "instance_norm", "gamma");
  check_vector(beta, c, "instance_norm", "beta");
  check_norm_epilogue(x, epilogue);
  if (known_stats.defined() && known_stats.numel() != x.dim(0) * c * 2) {
    throw Error("instance_norm: statistics for " + shape_string(known_stats.shape()) +
                " do not fit the input " + shape_string(x.shape()));
  }
  const float slope = epilogue.leaky_relu ? epilogue.leaky_slope : 1.0f;
  Tensor y = empty_like_device(x.shape(), x);
  if (x.numel() == 0) return y;
  with_float_type(x.dtype(), "instance_norm", [&](auto tag) {
    using T = decltype(tag);
    if (vector_width<T>(c) > 1) {
      launch_instance_norm<T, 16 / sizeof(T)>(x, gamma, beta, eps, epilogue, slope, known_stats, y);
    } else {
      launch_instance_norm<T, 1>(x, gamma, beta, eps, epilogue, slope, known_stats, y);
    }
  });
  check_launch("instance_norm");
  return y;
}

}  // namespace

Tensor instance_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps,
                     const NormEpilogue& epilogue) {
  return normalise(x, gamma, beta, eps, epilogue, Tensor());
}

Tensor instance_norm_with_stats(const Tensor& x, const Tensor& stats, const Tensor& gamma, const Tensor& beta,
                                float eps, const NormEpilogue& epilogue) {
  return normalise(x, gamma, beta, eps, epilogue, stats);
}

}  // namespace voxmamba::kernels::cuda
