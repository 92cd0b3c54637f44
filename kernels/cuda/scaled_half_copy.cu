// The scaled float16 copy of a bfloat16 tensor (scaled_half_copy.cuh): a grid-wide maximum of
// the finite magnitudes by atomicMax on their bits (non-negative floats order as their bit
// patterns), then a copy that reads it and scales, 8 values (16 bytes) a thread.
#include <algorithm>
#include <string>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/scaled_half_copy.cuh"

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

__global__ void scaled_half_copy_kernel(const uint4* __restrict__ x, std::int64_t vectors,
                                        const float* __restrict__ absmax, uint4* __restrict__ y) {
  const float scale = half_copy_scale(*absmax);
  VOXMAMBA_GRID_STRIDE(i, vectors) {
    const uint4 raw = x[i];
    const bf16* in = reinterpret_cast<const bf16*>(&raw);
    uint4 packed;
    f16* out = reinterpret_cast<f16*>(&packed);
#pragma unroll
    for (int k = 0; k < kValuesPerVector; ++k) out[k] = __float2half_rn(__bfloat162float(in[k]) * scale);
    y[i] = packed;
  }
}

}  // namespace

bool can_make_scaled_half_copy(const Tensor& x) {
  return x.dtype() == DType::bf16 && !x.device().is_cpu() && x.numel() % kValuesPerVector == 0 &&
         is_aligned16(x.raw_data());
}

ScaledHalfCopy make_scaled_half_copy(const Tensor& x) {
  if (!can_make_scaled_half_copy(x)) {
    throw Error("scaled half copy: wants a bfloat16 GPU tensor of whole, aligned 16-byte vectors, not " +
                std::string(dtype_name(x.dtype())) + " " + shape_string(x.shape()));
  }
  ScaledHalfCopy copy{empty_like_device(x.shape(), x, DType::f16),
                      Tensor::empty({1}, DType::f32, x.device())};
  check_cuda(cudaMemsetAsync(copy.absmax.raw_data(), 0, sizeof(float), stream()),
             "scaled half copy: zero maximum");
  const std::int64_t vectors = x.numel() / kValuesPerVector;
  if (vectors == 0) return copy;
  // Enough blocks to fill the GPU; each then takes many vectors, so there are few atomics.
  const unsigned blocks =
      std::min<unsigned>(blocks_for(vectors), 4u * static_cast<unsigned>(multiprocessor_count()));
  finite_absmax_kernel<<<blocks, kThreads, 0, stream()>>>(static_cast<const uint4*>(x.raw_data()), vectors,
                                                          mutable_ptr(copy.absmax));
  check_launch("finite_absmax_kernel");
  scaled_half_copy_kernel<<<blocks_for(vectors), kThreads, 0, stream()>>>(
      static_cast<const uint4*>(x.raw_data()), vectors, ptr(copy.absmax),
      static_cast<uint4*>(copy.values.raw_data()));
  check_launch("scaled_half_copy_kernel");
  return copy;
}

}  // namespace voxmamba::kernels::cuda
