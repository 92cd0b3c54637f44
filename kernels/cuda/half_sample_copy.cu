// The float16 sample copy of a 16-bit volume with its zero halo (half_sample_copy.cuh): for
// bfloat16, a grid-wide maximum of the finite magnitudes by atomicMax on their bits
// (non-negative floats order as their bit patterns); then a copy that reads it and scales,
// 8 values (16 bytes) a thread, each thread on a vector of the padded copy.
#include <algorithm>
#include <string>
#include <type_traits>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/half_sample_copy.cuh"

namespace voxmamba::kernels::cuda {
namespace {

constexpr int kValuesPerVector = 8;

__global__ void finite_absmax_kernel(const uint4* __restrict__ x, std::int64_t vectors, float* absmax) {
  float largest = 0.0f;
  VOXMAMBA_GRID_STRIDE(i, vectors) {
    const uint4 raw = x[i];
    const bf16* values = reinterpret_cast<const bf16*>(&raw);
#pragma unroll
    for (int k = 0; k < kValuesPerVector; ++k) {
      const float magnitude = fabsf(__bfloat162float(values[k]));
      if (magnitude <= 3.4e38f) largest = fmaxf(largest, magnitude);  // false for inf and NaN
    }
  }
  for (int offset = 16; offset > 0; offset /= 2)
    largest = fmaxf(largest, __shfl_xor_sync(0xffffffffu, largest, offset));
  __shared__ float warps[kThreads / 32];
  if (threadIdx.x % 32 == 0) warps[threadIdx.x / 32] = largest;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < static_cast<int>(blockDim.x) / 32; ++w) largest = fmaxf(largest, warps[w]);
    atomicMax(reinterpret_cast<int*>(absmax), __float_as_int(largest));
  }
}

// The volume and its padded copy, in 16-byte vectors.
struct PaddedVolume {
  int D, H, W;
  HalfSampleLayout layout;
  int vectors_per_voxel;              // C / 8
  std::int64_t copy_sample_vectors;   // (D + 2) copy_h copy_w C / 8
  std::int64_t copy_vectors;          // N times that
};

template <typename In>
__global__ void half_sample_copy_kernel(const uint4* __restrict__ x, PaddedVolume v,
                                        const float* __restrict__ absmax, uint4* __restrict__ y) {
  const float scale = absmax ? half_copy_scale(*absmax) : 1.0f;
  VOXMAMBA_GRID_STRIDE(i, v.copy_vectors) {
    const std::int64_t n = i / v.copy_sample_vectors;
    int rest = static_cast<int>(i - n * v.copy_sample_vectors);  // < 2^31 (can_make_half_sample_copy)
    const int c = rest % v.vectors_per_voxel;
    rest /= v.vectors_per_voxel;
    const int w = rest % v.layout.copy_w - v.layout.low_w;
    rest /= v.layout.copy_w;
    const int h = rest % v.layout.copy_h - 1, d = rest / v.layout.copy_h - 1;
    uint4 packed{0u, 0u, 0u, 0u};
    if (d >= 0 && d < v.D && h >= 0 && h < v.H && w >= 0 && w < v.W) {
      const uint4 raw = x[(((n * v.D + d) * v.H + h) * v.W + w) * v.vectors_per_voxel + c];
      if constexpr (std::is_same_v<In, f16>) {
        packed = raw;
      } else {
        const In* in = reinterpret_cast<const In*>(&raw);
        f16* out = reinterpret_cast<f16*>(&packed);
#pragma unroll
        for (int k = 0; k < kValuesPerVector; ++k) out[k] = __float2half_rn(__bfloat162float(in[k]) * scale);
      }
    }
    y[i] = packed;
  }
}

// The layout half_sample_copy.cuh describes, for x of shape [N, D, H, W, C].
HalfSampleLayout half_sample_layout(const Shape& x_shape) {
  // Channels come in 16-byte vectors (can_make_half_sample_copy), so 8 voxels make whole lines.
  const std::int64_t voxel_bytes = 2 * x_shape[4];
  const auto whole_lines = [&](std::int64_t voxels) { return voxels * voxel_bytes % 128 == 0; };
  int low_w = 1;
  while (!whole_lines(low_w)) ++low_w;
  int copy_w = static_cast<int>(x_shape[3]) + low_w + 1;
  while (!whole_lines(copy_w)) ++copy_w;
  return {static_cast<int>(x_shape[2]) + 2, copy_w, low_w};
}

Shape copy_shape(const Tensor& x, const HalfSampleLayout& layout) {
  return {x.dim(0), x.dim(1) + 2, layout.copy_h, layout.copy_w, x.dim(4)};
}

}  // namespace

bool can_make_half_sample_copy(const Tensor& x) {
  if ((x.dtype() != DType::bf16 && x.dtype() != DType::f16) || x.device().is_cpu() || x.rank() != 5 ||
      x.dim(4) % kValuesPerVector != 0 || !is_aligned16(x.raw_data())) {
    return false;
  }
  const Shape shape = copy_shape(x, half_sample_layout(x.shape()));
  return shape[1] * shape[2] * shape[3] * shape[4] < (std::int64_t(1) << 31);
}

HalfSampleCopy make_half_sample_copy(const Tensor& x) {
  if (!can_make_half_sample_copy(x)) {
    throw Error("half sample copy: wants a float16 or bfloat16 GPU tensor [N, D, H, W, C] of whole, aligned "
                "16-byte channel vectors and padded samples under 2^31 elements, not " +
                std::string(dtype_name(x.dtype())) + " " + shape_string(x.shape()));
  }
  const bool scaled = x.dtype() == DType::bf16;
  const HalfSampleLayout layout = half_sample_layout(x.shape());
  HalfSampleCopy copy{empty_like_device(copy_shape(x, layout), x, DType::f16), layout,
                      scaled ? Tensor::empty({1}, DType::f32, x.device()) : Tensor()};
  const PaddedVolume volume{static_cast<int>(x.dim(1)), static_cast<int>(x.dim(2)), static_cast<int>(x.dim(3)), layout,
                            static_cast<int>(x.dim(4) / kValuesPerVector),
                            copy.values.numel() / std::max<std::int64_t>(1, x.dim(0)) / kValuesPerVector,
                            copy.values.numel() / kValuesPerVector};
  if (scaled) {
    check_cuda(cudaMemsetAsync(copy.absmax.raw_data(), 0, sizeof(float), stream()),
               "half sample copy: zero maximum");
  }
  if (volume.copy_vectors == 0) return copy;
  const std::int64_t vectors = x.numel() / kValuesPerVector;
  if (scaled && vectors > 0) {
    // Enough blocks to fill the GPU; each then takes many vectors, so there are few atomics.
    const unsigned blocks =
        std::min<unsigned>(blocks_for(vectors), 4u * static_cast<unsigned>(multiprocessor_count()));
    finite_absmax_kernel<<<blocks, kThreads, 0, stream()>>>(static_cast<const uint4*>(x.raw_data()), vectors,
                                                            mutable_ptr(copy.absmax));
    check_launch("finite_absmax_kernel");
  }
  const auto launch = [&](auto kernel) {
    kernel<<<blocks_for(volume.copy_vectors), kThreads, 0, stream()>>>(
        static_cast<const uint4*>(x.raw_data()), volume, scaled ? ptr(copy.absmax) : nullptr,
        static_cast<uint4*>(copy.values.raw_data()));
  };
  if (scaled) {
    launch(half_sample_copy_kernel<bf16>);
  } else {
    launch(half_sample_copy_kernel<f16>);
  }
  check_launch("half_sample_copy_kernel");
  return copy;
}

}  // namespace voxmamba::kernels::cuda
