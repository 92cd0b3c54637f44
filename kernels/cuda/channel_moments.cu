// Instance-norm statistics from the partial moments a producer kernel wrote
// (channel_moments.cuh).
#include <cmath>

#include "kernels/cuda/channel_moments.cuh"
#include "kernels/cuda/cuda_common.cuh"

namespace voxmamba::kernels::cuda {
namespace {

__device__ ChannelMoments shuffle_xor(const ChannelMoments& m, int offset) {
  return {__shfl_xor_sync(0xffffffffu, m.count, offset), __shfl_xor_sync(0xffffffffu, m.mean, offset),
          __shfl_xor_sync(0xffffffffu, m.m2, offset)};
}

// stats[n * C + c] = (mean, 1 / sqrt(var + eps)) of sample n's channel c. A warp per (sample,
// channel): lane l merges blocks l, l + 32, ... in turn, then the lanes merge in a fixed
// shuffle tree, so the result does not depend on scheduling.
__global__ void finish_moments_kernel(const ChannelMoments* partials, float2* stats, std::int64_t samples,
                                      std::int64_t blocks, std::int64_t channels, float eps) {
  const std::int64_t i = (blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (i >= samples * channels) return;  // the same across a warp
  const std::int64_t n = i / channels, c = i % channels;
  ChannelMoments total{0.0, 0.0, 0.0};
  for (std::int64_t b = lane; b < blocks; b += 32)
    combine_moments(total, partials[(n * blocks + b) * channels + c]);
  for (int offset = 16; offset > 0; offset /= 2) combine_moments(total, shuffle_xor(total, offset));
  if (lane != 0) return;
  const double var = total.count > 0 ? total.m2 / total.count : 0.0;
  stats[i] =
      make_float2(static_cast<float>(total.mean), static_cast<float>(rsqrt(var + static_cast<double>(eps))));
}

}  // namespace

MomentPartials empty_moment_partials(std::int64_t samples, std::int64_t blocks, std::int64_t channels,
                                     const Device& device) {
  static_assert(sizeof(ChannelMoments) == 6 * sizeof(float), "a triple is six float32 elements");
  MomentPartials partials{Tensor::empty({samples * blocks * channels * 6}, DType::f32, device), samples,
                          blocks, channels};
  check_cuda(cudaMemsetAsync(partials.triples.raw_data(), 0, partials.triples.bytes(), stream()),
             "instance-norm moments: clear");
  return partials;
}

Tensor finish_channel_moments(const MomentPartials& partials, float eps) {
  const std::int64_t pairs = partials.samples * partials.channels;
  Tensor stats = Tensor::empty({pairs * 2}, DType::f32, partials.triples.device());  // float2 each
  if (pairs == 0) return stats;
  finish_moments_kernel<<<blocks_for(pairs * 32), kThreads, 0, stream()>>>(
      static_cast<const ChannelMoments*>(partials.triples.raw_data()), static_cast<float2*>(stats.raw_data()),
      partials.samples, partials.blocks, partials.channels, eps);
  check_launch("instance-norm moments: finish");
  return stats;
}

}  // namespace voxmamba::kernels::cuda
