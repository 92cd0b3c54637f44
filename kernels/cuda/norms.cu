// Layer norm (one warp per token) and instance norm (deterministic two-stage reductions in
// double: per-block partial sums in a fixed layout, then summed in a fixed order).
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/op_checks.h"

namespace voxmamba::kernels::cuda {
namespace {

constexpr float kDefaultScale = 1.0f;

__device__ float warp_sum(float value) {
  for (int offset = 16; offset > 0; offset /= 2) value += __shfl_xor_sync(0xffffffffu, value, offset);
  return value;
}

__global__ void layer_norm_kernel(const float* x, const float* gamma, const float* beta, float* y,
                                  std::int64_t rows, std::int64_t c, float eps) {
  const std::int64_t row = (blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const float* in = x + row * c;
  float sum = 0.0f;
  for (std::int64_t k = lane; k < c; k += 32) sum += in[k];
  const float mean = warp_sum(sum) / static_cast<float>(c);
  float squares = 0.0f;
  for (std::int64_t k = lane; k < c; k += 32) squares += (in[k] - mean) * (in[k] - mean);
  const float inv = rsqrtf(warp_sum(squares) / static_cast<float>(c) + eps);
  for (std::int64_t k = lane; k < c; k += 32) {
    y[row * c + k] = (in[k] - mean) * inv * (gamma ? gamma[k] : kDefaultScale) + (beta ? beta[k] : 0.0f);
  }
}

// partial[n, split, c] = sum over this split's voxels of (x - mean[n, c])^power_of_two,
// with mean == nullptr meaning plain sums. Threads: x over channels, y over voxels.
__global__ void partial_sums_kernel(const float* x, const double* mean, double* partial, std::int64_t voxels,
                                    std::int64_t c, int splits) {
  const std::int64_t channel = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  const int split = blockIdx.y, n = blockIdx.z;
  if (channel >= c) return;
  const std::int64_t per_split = (voxels + splits - 1) / splits;
  const std::int64_t v0 = split * per_split, v1 = min(voxels, v0 + per_split);
  const float* xn = x + n * voxels * c;
  const double centre = mean ? mean[n * c + channel] : 0.0;
  double acc = 0.0;
  for (std::int64_t v = v0; v < v1; ++v) {
    const double value = xn[v * c + channel] - centre;
    acc += mean ? value * value : value;
  }
  partial[(static_cast<std::int64_t>(n) * splits + split) * c + channel] = acc;
}

__global__ void finish_sums_kernel(const double* partial, double* result, std::int64_t voxels, std::int64_t c,
                                   int splits, std::int64_t count) {
  const std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;  // n * c + channel
  if (i >= count) return;
  const std::int64_t n = i / c, channel = i % c;
  double total = 0.0;
  for (int s = 0; s < splits; ++s) total += partial[(n * splits + s) * c + channel];
  result[i] = total / static_cast<double>(voxels);
}

__global__ void normalize_kernel(const float* x, const double* mean, const double* var, const float* gamma,
                                 const float* beta, float* y, std::int64_t voxels, std::int64_t c, float eps,
                                 std::int64_t total) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t channel = i % c, n = i / (voxels * c), key = n * c + channel;
    const double inv = rsqrt(var[key] + eps);
    const double scale = inv * (gamma ? gamma[channel] : 1.0f);
    y[i] = static_cast<float>((x[i] - mean[key]) * scale + (beta ? beta[channel] : 0.0f));
  }
}

}  // namespace

Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps) {
  require_cuda_f32(x, "layer_norm", "input");
  const std::int64_t c = x.dim(-1), rows = x.numel() / c;
  check_vector(gamma, c, "layer_norm", "gamma");
  check_vector(beta, c, "layer_norm", "beta");
  Tensor y = empty_like_device(x.shape(), x);
  layer_norm_kernel<<<blocks_for(rows * 32), kThreads>>>(ptr(x), ptr(gamma), ptr(beta), mutable_ptr(y), rows, c,
                                                         eps);
  check_launch("layer_norm");
  return y;
}

Tensor instance_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps) {
  check_rank(x, 5, "instance_norm", "input");
  require_cuda_f32(x, "instance_norm", "input");
  const std::int64_t N = x.dim(0), c = x.dim(4), voxels = x.numel() / (N * c);
  check_vector(gamma, c, "instance_norm", "gamma");
  check_vector(beta, c, "instance_norm", "beta");
  // Enough splits to fill the GPU, each still summing a few hundred voxels.
  const int splits = static_cast<int>(std::max<std::int64_t>(1, std::min<std::int64_t>(1024, voxels / 256)));
  Tensor partial = Tensor::empty({N * splits * c * 2}, DType::f32, x.device());  // doubles: 2 floats each
  Tensor stats = Tensor::empty({N * c * 4}, DType::f32, x.device());              // mean and var, doubles
  double* partial_d = static_cast<double*>(partial.raw_data());
  double* mean = static_cast<double*>(stats.raw_data());
  double* var = mean + N * c;
  const dim3 grid(blocks_for(c, 32), splits, static_cast<unsigned int>(N));
  partial_sums_kernel<<<grid, 32>>>(ptr(x), nullptr, partial_d, voxels, c, splits);
  finish_sums_kernel<<<blocks_for(N * c), kThreads>>>(partial_d, mean, voxels, c, splits, N * c);
  partial_sums_kernel<<<grid, 32>>>(ptr(x), mean, partial_d, voxels, c, splits);
  finish_sums_kernel<<<blocks_for(N * c), kThreads>>>(partial_d, var, voxels, c, splits, N * c);
  Tensor y = empty_like_device(x.shape(), x);
  normalize_kernel<<<blocks_for(x.numel()), kThreads>>>(ptr(x), mean, var, ptr(gamma), ptr(beta), mutable_ptr(y),
                                                        voxels, c, eps, x.numel());
  check_launch("instance_norm");
  return y;
}

}  // namespace voxmamba::kernels::cuda
