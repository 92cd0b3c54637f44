// Layer norm (one warp per token) and instance norm on the GPU, for float32 and bfloat16
// activations with float32 statistics.
//
// Instance norm takes one pass for its statistics: each thread sums a strip of voxels of one
// channel in float32, shifted by the channel's first voxel so that sum and sum of squares do
// not cancel; strips are combined in double in a fixed order (deterministic), and a second
// kernel normalises.
#include <algorithm>

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

constexpr int kChannelsPerBlock = 32, kVoxelLanes = 8;

// Block (32 channels, 8 voxel lanes) sums split `blockIdx.y` of sample `blockIdx.z`:
// partial[(n * splits + split) * c + channel] = (sum, sum of squares) of x - x[first voxel].
template <typename T>
__global__ void instance_stats_kernel(const T* x, double2* partial, std::int64_t voxels, std::int64_t c,
                                      int splits) {
  const std::int64_t channel = blockIdx.x * static_cast<std::int64_t>(kChannelsPerBlock) + threadIdx.x;
  const int split = blockIdx.y, n = blockIdx.z;
  __shared__ double2 lanes[kVoxelLanes][kChannelsPerBlock];
  float sum = 0.0f, squares = 0.0f;
  if (channel < c) {
    const T* xn = x + n * voxels * c;
    const float shift = to_f32(xn[channel]);
    const std::int64_t per_split = (voxels + splits - 1) / splits;
    const std::int64_t v0 = split * per_split, v1 = min(voxels, v0 + per_split);
    for (std::int64_t v = v0 + threadIdx.y; v < v1; v += kVoxelLanes) {
      const float value = to_f32(xn[v * c + channel]) - shift;
      sum += value;
      squares += value * value;
    }
  }
  lanes[threadIdx.y][threadIdx.x] = make_double2(sum, squares);
  __syncthreads();
  if (threadIdx.y != 0 || channel >= c) return;
  double2 total = make_double2(0.0, 0.0);
  for (int lane = 0; lane < kVoxelLanes; ++lane) total.x += lanes[lane][threadIdx.x].x, total.y += lanes[lane][threadIdx.x].y;
  partial[(static_cast<std::int64_t>(n) * splits + split) * c + channel] = total;
}

// stats[n * c + channel] = (mean, 1 / sqrt(var + eps)), from the splits in a fixed order.
template <typename T>
__global__ void instance_finish_kernel(const T* x, const double2* partial, float2* stats, std::int64_t voxels,
                                       std::int64_t c, int splits, std::int64_t count, float eps) {
  const std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;  // n * c + channel
  if (i >= count) return;
  const std::int64_t n = i / c, channel = i % c;
  double sum = 0.0, squares = 0.0;
  for (int s = 0; s < splits; ++s) {
    const double2 p = partial[(n * splits + s) * c + channel];
    sum += p.x, squares += p.y;
  }
  const double shifted_mean = sum / static_cast<double>(voxels);
  const double var = max(0.0, squares / static_cast<double>(voxels) - shifted_mean * shifted_mean);
  const double mean = static_cast<double>(to_f32(x[n * voxels * c + channel])) + shifted_mean;
  stats[i] = make_float2(static_cast<float>(mean), static_cast<float>(rsqrt(var + static_cast<double>(eps))));
}

// y = act(norm(x) + residual); slope 1 is the identity.
template <typename T>
__global__ void instance_normalize_kernel(const T* x, const float2* stats, const float* gamma, const float* beta,
                                          const T* residual, float slope, T* y, std::int64_t voxels, std::int64_t c,
                                          std::int64_t total) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t channel = i % c, n = i / (voxels * c);
    const float2 s = stats[n * c + channel];
    float value = (to_f32(x[i]) - s.x) * s.y * (gamma ? gamma[channel] : 1.0f) + (beta ? beta[channel] : 0.0f);
    if (residual) value += to_f32(residual[i]);
    y[i] = from_f32<T>(value < 0.0f ? value * slope : value);
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
    layer_norm_kernel<T><<<blocks_for(rows * 32), kThreads>>>(ptr_as<T>(x), ptr(gamma), ptr(beta),
                                                              mutable_ptr_as<T>(y), rows, c, eps);
  });
  check_launch("layer_norm");
  return y;
}

Tensor instance_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps,
                     const NormEpilogue& epilogue) {
  check_rank(x, 5, "instance_norm", "input");
  require_cuda_float(x, "instance_norm", "input");
  require_cuda_f32(gamma, "instance_norm", "gamma");
  require_cuda_f32(beta, "instance_norm", "beta");
  const std::int64_t N = x.dim(0), c = x.dim(4), voxels = x.numel() / std::max<std::int64_t>(1, N * c);
  check_vector(gamma, c, "instance_norm", "gamma");
  check_vector(beta, c, "instance_norm", "beta");
  check_norm_epilogue(x, epilogue);
  const float slope = epilogue.leaky_relu ? epilogue.leaky_slope : 1.0f;
  Tensor y = empty_like_device(x.shape(), x);
  if (x.numel() == 0) return y;
  // Enough splits to fill the GPU, each thread still summing a few hundred voxels.
  const int splits = static_cast<int>(std::clamp<std::int64_t>(voxels / 2048, 1, 1024));
  Tensor partial = Tensor::empty({N * splits * c * 4}, DType::f32, x.device());  // double2 each
  Tensor stats = Tensor::empty({N * c * 2}, DType::f32, x.device());             // float2 each
  double2* partial_d = static_cast<double2*>(partial.raw_data());
  float2* stats_d = static_cast<float2*>(stats.raw_data());
  with_float_type(x.dtype(), "instance_norm", [&](auto tag) {
    using T = decltype(tag);
    const dim3 grid(blocks_for(c, kChannelsPerBlock), splits, static_cast<unsigned int>(N));
    instance_stats_kernel<T><<<grid, dim3(kChannelsPerBlock, kVoxelLanes)>>>(ptr_as<T>(x), partial_d, voxels, c, splits);
    instance_finish_kernel<T><<<blocks_for(N * c), kThreads>>>(ptr_as<T>(x), partial_d, stats_d, voxels, c, splits,
                                                               N * c, eps);
    instance_normalize_kernel<T><<<blocks_for(x.numel()), kThreads>>>(
        ptr_as<T>(x), stats_d, ptr(gamma), ptr(beta), ptr_as<T>(epilogue.residual), slope, mutable_ptr_as<T>(y),
        voxels, c, x.numel());
  });
  check_launch("instance_norm");
  return y;
}

}  // namespace voxmamba::kernels::cuda
