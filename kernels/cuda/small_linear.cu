// Linear maps with few inputs and outputs (K = 48 or 96 into N = 8, 16, 48 or 96: the
// pointwise convs and projections of base's 64^3 stage and 128^3 decoder) in 16-bit types, on
// tensor cores through mma.sync. Such a GEMM is memory bound (a few hundred multiply-adds per
// row), but cuBLAS ran these shapes well below the memory bandwidth and needed the bias
// written into the output first and read back. Here the weight matrix sits in shared memory,
// each warp streams 16-row tiles of x through m16n8k16 MMAs with float32 accumulators that
// start at the bias, and writes each output once.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <type_traits>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/small_linear.cuh"

namespace voxmamba::kernels::cuda {
namespace {

constexpr int kWarps = 4;

// D += A * B for one m16n8k16 tile, float32 accumulators (PTX ISA, "mma.sync ... m16n8k16").
// Code compiled for GPUs older than sm_80 (which lack these MMAs) has empty bodies and is
// never launched: small_linear checks the PTX version of the kernel it would run.
__device__ __forceinline__ void mma_16x8x16(float (&d)[4], const std::uint32_t (&a)[4], std::uint32_t b0,
                                            std::uint32_t b1, bf16) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}
__device__ __forceinline__ void mma_16x8x16(float (&d)[4], const std::uint32_t (&a)[4], std::uint32_t b0,
                                            std::uint32_t b1, f16) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

// Two adjacent 16-bit values as one 32-bit register, and back from two floats.
template <typename T>
__device__ __forceinline__ std::uint32_t load_pair(const T* p) {
  return *reinterpret_cast<const std::uint32_t*>(p);
}
__device__ __forceinline__ std::uint32_t pack_pair(float lo, float hi, bf16) {
  const __nv_bfloat162 pair = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const std::uint32_t*>(&pair);
}
__device__ __forceinline__ std::uint32_t pack_pair(float lo, float hi, f16) {
  const __half2 pair = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<const std::uint32_t*>(&pair);
}

// y[r, :] = x[r, :] w + bias for rows r < rows; w is [K, N] row-major. Fragment layouts are
// those of m16n8k16 with lane = 4 g + c: A holds rows g and g + 8, columns 2c, 2c + 1 and
// 2c + 8, 2c + 9 of the 16 x 16 tile; B columns n = g, rows k = 2c, 2c + 1 and 2c + 8, 2c + 9;
// D rows g and g + 8, columns 2c, 2c + 1. The weights are stored transposed, [n][k], so a B
// register is one 32-bit load; rows are padded by 8 values so that the 8 rows g of a load
// fall in different banks.
template <typename T, int K, int N>
__global__ void __launch_bounds__(kWarps * 32)
    small_linear_kernel(const T* __restrict__ x, const T* __restrict__ w, const float* __restrict__ bias,
                        T* __restrict__ y, std::int64_t rows) {
  constexpr int kSteps = K / 16, kTiles = N / 8, kStride = K + 8;
  __shared__ __align__(16) T weights[N * kStride];
  for (int i = threadIdx.x; i < K * N; i += blockDim.x) weights[(i % N) * kStride + i / N] = w[i];
  __syncthreads();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, c = lane % 4;
  float start[kTiles][2];  // the bias of columns 8 t + 2c and 8 t + 2c + 1
#pragma unroll
  for (int t = 0; t < kTiles; ++t) {
    start[t][0] = bias ? bias[8 * t + 2 * c] : 0.0f;
    start[t][1] = bias ? bias[8 * t + 2 * c + 1] : 0.0f;
  }
  const std::int64_t tiles = (rows + 15) / 16;
  for (std::int64_t tile = static_cast<std::int64_t>(blockIdx.x) * kWarps + warp; tile < tiles;
       tile += static_cast<std::int64_t>(gridDim.x) * kWarps) {
    const std::int64_t r0 = tile * 16 + g, r1 = r0 + 8;
    const bool in0 = r0 < rows, in1 = r1 < rows;
    const T* x0 = x + r0 * K + 2 * c;
    const T* x1 = x + r1 * K + 2 * c;
    std::uint32_t a[kSteps][4];
#pragma unroll
    for (int s = 0; s < kSteps; ++s) {
      a[s][0] = in0 ? load_pair(x0 + 16 * s) : 0u;
      a[s][1] = in1 ? load_pair(x1 + 16 * s) : 0u;
      a[s][2] = in0 ? load_pair(x0 + 16 * s + 8) : 0u;
      a[s][3] = in1 ? load_pair(x1 + 16 * s + 8) : 0u;
    }
#pragma unroll
    for (int t = 0; t < kTiles; ++t) {
      float d[4] = {start[t][0], start[t][1], start[t][0], start[t][1]};
      const T* column = weights + (8 * t + g) * kStride + 2 * c;
#pragma unroll
      for (int s = 0; s < kSteps; ++s) {
        mma_16x8x16(d, a[s], load_pair(column + 16 * s), load_pair(column + 16 * s + 8), T{});
      }
      if (in0) *reinterpret_cast<std::uint32_t*>(y + r0 * N + 8 * t + 2 * c) = pack_pair(d[0], d[1], T{});
      if (in1) *reinterpret_cast<std::uint32_t*>(y + r1 * N + 8 * t + 2 * c) = pack_pair(d[2], d[3], T{});
    }
  }
}

// Whether the kernel that would run was compiled for sm_80 or newer. A build for older GPUs
// (the default architecture where no GPU is present, as in CI) runs on newer ones from PTX
// that lacks the MMAs.
template <typename Kernel>
bool has_tensor_core_code(Kernel kernel) {
  cudaFuncAttributes attributes{};
  if (cudaFuncGetAttributes(&attributes, kernel) != cudaSuccess) {
    cudaGetLastError();  // not left behind for the next launch check
    return false;
  }
  return attributes.ptxVersion >= 80;
}

template <typename T, int K, int N>
bool launch(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& y, std::int64_t rows) {
  static const bool available = has_tensor_core_code(small_linear_kernel<T, K, N>);
  if (!available) return false;
  const std::int64_t tiles = (rows + 15) / 16, blocks = (tiles + kWarps - 1) / kWarps;
  // Enough blocks for several per multiprocessor; each loads the weights once.
  const std::int64_t grid = std::min<std::int64_t>(blocks, std::int64_t(8) * multiprocessor_count());
  small_linear_kernel<T, K, N><<<static_cast<unsigned int>(grid), kWarps * 32>>>(
      ptr_as<T>(x), ptr_as<T>(weight), ptr(bias), mutable_ptr_as<T>(y), rows);
  return true;
}

template <typename T, int K>
bool dispatch_n(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& y, std::int64_t rows,
                std::int64_t n) {
  switch (n) {
    case 8: return launch<T, K, 8>(x, weight, bias, y, rows);
    case 16: return launch<T, K, 16>(x, weight, bias, y, rows);
    case 48: return launch<T, K, 48>(x, weight, bias, y, rows);
    case 96: return launch<T, K, 96>(x, weight, bias, y, rows);
    default: return false;
  }
}

// VOXMAMBA_SMALL_LINEAR = "on" (default) or "off" (every 16-bit linear map on cuBLAS, to
// compare the two in one run).
bool small_linear_enabled() {
  const char* text = std::getenv("VOXMAMBA_SMALL_LINEAR");
  const std::string value = text ? text : "on";
  if (value == "on") return true;
  if (value == "off") return false;
  throw Error("VOXMAMBA_SMALL_LINEAR must be on or off, not '" + value + "'");
}

}  // namespace

bool small_linear(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& y) {
  if (!small_linear_enabled()) return false;
  const std::int64_t k = weight.dim(0), n = weight.dim(1), rows = x.numel() / k;
  if (x.dtype() == DType::f32 || y.dtype() != x.dtype() || rows == 0) return false;
  // Pairs of 16-bit values are read and written as 32-bit words.
  if (!is_aligned(x.raw_data(), 4) || !is_aligned(weight.raw_data(), 4) || !is_aligned(y.raw_data(), 4)) return false;
  bool launched = false;
  with_float_type(x.dtype(), "linear", [&](auto tag) {
    using T = decltype(tag);
    if constexpr (!std::is_same_v<T, float>) {
      if (k == 48) launched = dispatch_n<T, 48>(x, weight, bias, y, rows, n);
      if (k == 96) launched = dispatch_n<T, 96>(x, weight, bias, y, rows, n);
    }
  });
  return launched;
}

}  // namespace voxmamba::kernels::cuda
