#pragma once
// Instance-norm statistics gathered by the kernel that writes the normalised tensor (a conv's
// epilogue) instead of by a pass of their own over it: each block sums its share of a
// sample's channels into (count, mean, M2) triples, and finish_channel_moments combines a
// sample's triples in a fixed order (Chan et al.'s pairwise update, in double), so the
// statistics are the same every run and do not cancel when the mean is large against the spread.
#include <cstdint>

#include "core/tensor.h"
#include "kernels/ops.h"

namespace voxmamba::kernels::cuda {

struct ChannelMoments {
  double count, mean, m2;  // m2: sum of squared deviations from the mean
};

// a := the moments of a's and b's values together.
VOXMAMBA_HOST_DEVICE inline void combine_moments(ChannelMoments& a, const ChannelMoments& b) {
  if (b.count == 0) return;
  const double count = a.count + b.count, delta = b.mean - a.mean;
  a.mean += delta * (b.count / count);
  a.m2 += b.m2 + delta * delta * (a.count * b.count / count);
  a.count = count;
}

#ifdef __CUDACC__
// The producer's side, for kernels whose outputs sit in m16n8 accumulator fragments (lane l
// holds rows l / 4 and l / 4 + 8 of an m16 tile, columns 2 (l % 4) and the next of each n8
// tile): each lane sums the values it stores, per channel, in registers, shifted by the first
// value it stored for the sample so that the sums do not cancel whatever the mean; the
// lanes and warps are merged once a sample, when the block moves on (flush). Per value that is
// a subtraction, an add and an FMA. (Merging each tile's moments in shared memory as the tile
// was written, two passes and shuffles a tile, cost the resident conv at 128^3 x 48 about
// 115 us against the 60 us statistics pass it saved: H200, fp16, ncu.)
template <int Tiles>
struct LaneMoments {
  float shift[Tiles][2], sum[Tiles][2], squares[Tiles][2];
  int count;  // voxels summed
  __device__ void clear() {
    count = 0;
#pragma unroll
    for (int j = 0; j < Tiles; ++j) {
#pragma unroll
      for (int e = 0; e < 2; ++e) shift[j][e] = sum[j][e] = squares[j][e] = 0.0f;
    }
  }
  // A voxel's values follow (value(j, e) for n8 tile j, its column e): the first voxel of a
  // sample sets the shift.
  template <typename Value>
  __device__ __forceinline__ void start_voxel(const Value& value) {
    if (count == 0) {
#pragma unroll
      for (int j = 0; j < Tiles; ++j) shift[j][0] = value(j, 0), shift[j][1] = value(j, 1);
    }
    ++count;
  }
  __device__ __forceinline__ void add(int j, int e, float x) {
    const float d = x - shift[j][e];
    sum[j][e] += d;
    squares[j][e] = fmaf(d, d, squares[j][e]);
  }
  // The warp's moments into running[channel] (mean, M2), 8 x Tiles channels, and its count into
  // *warp_count, merging the eight lanes of each channel (Chan et al., a fixed shuffle tree);
  // then clear(). Every lane of the warp calls it.
  __device__ void write_warp(float2* running, int* warp_count) {
    const int lane = threadIdx.x % 32;
#pragma unroll
    for (int j = 0; j < Tiles; ++j) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        float n = static_cast<float>(count);
        float mean = count > 0 ? shift[j][e] + sum[j][e] / n : 0.0f;
        float m2 = count > 0 ? fmaxf(0.0f, squares[j][e] - sum[j][e] * (sum[j][e] / n)) : 0.0f;
#pragma unroll
        for (int offset = 4; offset < 32; offset *= 2) {
          const float n_b = __shfl_xor_sync(0xffffffffu, n, offset),
                      mean_b = __shfl_xor_sync(0xffffffffu, mean, offset),
                      m2_b = __shfl_xor_sync(0xffffffffu, m2, offset);
          const float total = n + n_b;
          if (total > 0.0f) {
            const float delta = mean_b - mean;
            mean += delta * (n_b / total);
            m2 += m2_b + delta * delta * (n * n_b / total);
          }
          n = total;
        }
        if (lane < 4) running[j * 8 + 2 * lane + e] = make_float2(mean, m2);
        if (lane == 0 && j == 0 && e == 0) *warp_count = static_cast<int>(n);
      }
    }
    clear();
  }
};

// The block's moments of one sample, its warps' written by LaneMoments::write_warp into
// running[warp][channel] and warp_counts[warp], merged in order into out[0 .. channels) in
// double. Every thread of the block calls it after write_warp; a barrier must follow before
// the warps write again.
template <int Warps>
__device__ __forceinline__ void merge_block_moments(const float2* running, const int* warp_counts,
                                                    int channels, ChannelMoments* out) {
  __syncthreads();
  for (int c = threadIdx.x; c < channels; c += blockDim.x) {
    ChannelMoments total{0.0, 0.0, 0.0};
    for (int w = 0; w < Warps; ++w) {
      const float2 m = running[w * channels + c];
      combine_moments(total, {static_cast<double>(warp_counts[w]), m.x, m.y});
    }
    out[c] = total;
  }
}
#endif

// Partial moments as a producer writes them: [N][blocks][C] triples, zero where a block saw no
// voxel of a sample. The tensor holds them as raw bytes (float32 elements, six a triple).
struct MomentPartials {
  Tensor triples;
  std::int64_t samples = 0, blocks = 0, channels = 0;
};

// Zero-filled partials (on the stream) for N samples, `blocks` producer blocks, C channels.
MomentPartials empty_moment_partials(std::int64_t samples, std::int64_t blocks, std::int64_t channels,
                                     const Device& device);

// The instance norm's statistics from the partials: per sample and channel (mean, 1 / sqrt(var
// + eps)) as float2, in the layout norms.cu's normalising pass reads (instance_norm_with_stats).
Tensor finish_channel_moments(const MomentPartials& partials, float eps);

// instance_norm (ops.h) of x whose statistics `stats` (finish_channel_moments) are already known.
Tensor instance_norm_with_stats(const Tensor& x, const Tensor& stats, const Tensor& gamma, const Tensor& beta,
                                float eps, const NormEpilogue& epilogue);

}  // namespace voxmamba::kernels::cuda
