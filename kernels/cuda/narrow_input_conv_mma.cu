// Narrow-input dense convs as implicit GEMMs on tensor cores. The output voxels are the GEMM's
// rows, the K^3 * Cin taps its reduction (343 for the stem), the output channels its columns:
// each block stages the input its 64 output voxels read (one output row) in shared memory and
// gathers the A operand from there, tap by tap, through a table of offsets; the weights, B,
// stay in shared memory for all the tiles a block walks. On the CUDA cores the stem (k7 s2,
// 1 -> 48 channels) spent 343 x 16 float FMAs a thread and voxel. H200, base 128^3, float16
// (Nsight Compute): the stem 0.64 -> 0.17 ms, the first decoder conv (k3, 1 -> 48 at 128^3)
// 0.38 -> 0.19 ms; the forward 36.3 -> 35.6 ms. The products take a few microseconds: the
// rest is staging and writing, which is why staging keeps several loads in flight.
#include <algorithm>
#include <cstdint>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/mma_sm80.cuh"
#include "kernels/cuda/narrow_input_conv_mma.cuh"
#include "kernels/op_checks.h"

namespace voxmamba::kernels::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kTileVoxels = 16 * kWarps;  // one m16 row block a warp, along w
constexpr int kMaxColumnTiles = 8;        // n8 tiles: at most 64 output channels

struct MmaGeometry {
  int N, D, H, W, cin;
  int Do, Ho, Wo, cout;
  int kernel, stride, padding, dilation;
  int k_padded;                                // K^3 * Cin rounded up to the MMA's 16
  int b_stride;                                // k_padded + 8: B fragment loads free of bank conflicts
  int region_d, region_h, region_w, region;    // the staged input of one tile, in elements
  // Shared memory, in bytes from its start (lay_out_shared_memory): the tap offsets, the staged
  // input and the output tile follow B; `shared_bytes` in all.
  int offsets_at, staged_at, out_tile_at, shared_bytes;
};

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
constexpr int kStagedLoads = 8;  // input loads in flight a thread while staging
#endif

// Shared memory: B as [cout][b_stride] 16-bit values (B[n][k] = weight[k][n], zero beyond
// the taps), the taps' offsets into the staged input [k_padded], the staged input
// [region_d][region_h][region_w][cin], and the output tile [64][cout], each from a 16-byte
// boundary. Worked out once here; the kernel only reads the offsets.
inline void lay_out_shared_memory(MmaGeometry& g) {
  const auto round16 = [](std::int64_t bytes) { return static_cast<int>((bytes + 15) / 16 * 16); };
  g.offsets_at = round16(std::int64_t(g.cout) * g.b_stride * 2);
  g.staged_at = g.offsets_at + round16(std::int64_t(g.k_padded) * 4);
  g.out_tile_at = g.staged_at + round16(std::int64_t(g.region) * 2);
  g.shared_bytes = g.out_tile_at + kTileVoxels * g.cout * 2;
}

// Tile t: output voxels [64 w, 64 w + 64) of row (n, od, oh). A warp's 16 rows of the A
// operand are 16 of those voxels, its columns the taps: A[m][k] = staged[m * stride * cin +
// offset[k]], where padded taps (k at or beyond K^3 cin, whose B rows are zero) read offset 0.
template <typename T>
__global__ void __launch_bounds__(kWarps * 32) narrow_input_mma_kernel(const T* __restrict__ x,
                                                                      const T* __restrict__ weight,
                                                                      const float* __restrict__ bias,
                                                                      T* __restrict__ y, MmaGeometry g) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  extern __shared__ __align__(16) unsigned char shared[];
  std::uint16_t* b_tile = reinterpret_cast<std::uint16_t*>(shared);
  int* offsets = reinterpret_cast<int*>(shared + g.offsets_at);
  std::uint16_t* staged = reinterpret_cast<std::uint16_t*>(shared + g.staged_at);
  std::uint16_t* out_tile = reinterpret_cast<std::uint16_t*>(shared + g.out_tile_at);

  const int taps = g.kernel * g.kernel * g.kernel, k_total = taps * g.cin;
  // B from the weights [k_total][cout] in 16-byte words (eight channels of one tap), several
  // loads in flight a thread: one load at a time, a block spent tens of microseconds here.
  const int words_per_tap = g.cout / 8;
#pragma unroll 4
  for (int j = threadIdx.x; j < k_total * words_per_tap; j += blockDim.x) {
    const int k = j / words_per_tap, n0 = j % words_per_tap * 8;
    const uint4 word = reinterpret_cast<const uint4*>(weight)[j];
    const std::uint16_t* values = reinterpret_cast<const std::uint16_t*>(&word);
#pragma unroll
    for (int i = 0; i < 8; ++i) b_tile[(n0 + i) * g.b_stride + k] = values[i];
  }
  for (int j = threadIdx.x; j < g.cout * (g.k_padded - k_total); j += blockDim.x) {
    b_tile[j / (g.k_padded - k_total) * g.b_stride + k_total + j % (g.k_padded - k_total)] = 0;
  }
  for (int k = threadIdx.x; k < g.k_padded; k += blockDim.x) {
    int offset = 0;
    if (k < k_total) {
      const int tap = k / g.cin, ci = k % g.cin;
      const int kd = tap / (g.kernel * g.kernel), kh = tap / g.kernel % g.kernel, kw = tap % g.kernel;
      offset = ((kd * g.dilation * g.region_h + kh * g.dilation) * g.region_w + kw * g.dilation) * g.cin + ci;
    }
    offsets[k] = offset;
  }

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, row = lane / 4, quad = lane % 4;
  const int column_tiles = g.cout / 8;
  const int tiles_w = (g.Wo + kTileVoxels - 1) / kTileVoxels;
  const std::int64_t tiles = static_cast<std::int64_t>(g.N) * g.Do * g.Ho * tiles_w;
  const std::uint16_t* x_bits = reinterpret_cast<const std::uint16_t*>(x);
  const int row_elements = g.region_w * g.cin;
  for (std::int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const int ow0 = static_cast<int>(tile % tiles_w) * kTileVoxels;
    const std::int64_t output_row = tile / tiles_w;  // (n, od, oh)
    const int oh = static_cast<int>(output_row % g.Ho), od = static_cast<int>(output_row / g.Ho % g.Do);
    const std::int64_t n = output_row / (static_cast<std::int64_t>(g.Ho) * g.Do);
    __syncthreads();  // the previous tile's staged input and output are no longer read
    // The staged input, thread by thread in steps of the block's size, kStagedLoads loads in
    // flight at a time (one at a time, each waited for, the staging took most of the time):
    // element j lies in plane rd, row rh of the region, at position e along w and channels
    // (j = (rd * region_h + rh) * row_elements + e), zero outside the volume.
    {
      const int d0 = od * g.stride - g.padding, h0 = oh * g.stride - g.padding, w0 = ow0 * g.stride - g.padding;
      const int step = blockDim.x;
      int e = threadIdx.x % row_elements, rh = threadIdx.x / row_elements % g.region_h,
          rd = threadIdx.x / row_elements / g.region_h;
      for (int first = threadIdx.x; first < g.region; first += kStagedLoads * step) {
        std::uint16_t values[kStagedLoads];
#pragma unroll
        for (int u = 0; u < kStagedLoads; ++u) {
          values[u] = 0;
          const int d = d0 + rd, h = h0 + rh, w = w0 + (g.cin == 1 ? e : e / g.cin);
          if (first + u * step < g.region && d >= 0 && d < g.D && h >= 0 && h < g.H && w >= 0 && w < g.W) {
            const std::int64_t voxel = ((n * g.D + d) * g.H + h) * static_cast<std::int64_t>(g.W) + w;
            values[u] = x_bits[voxel * g.cin + (g.cin == 1 ? 0 : e % g.cin)];
          }
          for (e += step; e >= row_elements; e -= row_elements) {
            if (++rh == g.region_h) rh = 0, ++rd;
          }
        }
#pragma unroll
        for (int u = 0; u < kStagedLoads; ++u) {
          if (first + u * step < g.region) staged[first + u * step] = values[u];
        }
      }
    }
    __syncthreads();

    float acc[kMaxColumnTiles][4] = {};
    const int low = (warp * 16 + row) * g.stride * g.cin, high = low + 8 * g.stride * g.cin;
    for (int k0 = 0; k0 < g.k_padded; k0 += 16) {
      const int2 k01 = *reinterpret_cast<const int2*>(offsets + k0 + 2 * quad);
      const int2 k89 = *reinterpret_cast<const int2*>(offsets + k0 + 8 + 2 * quad);
      const std::uint32_t a[4] = {pack_16bit(staged[low + k01.x], staged[low + k01.y]),
                                  pack_16bit(staged[high + k01.x], staged[high + k01.y]),
                                  pack_16bit(staged[low + k89.x], staged[low + k89.y]),
                                  pack_16bit(staged[high + k89.x], staged[high + k89.y])};
#pragma unroll
      for (int j = 0; j < kMaxColumnTiles; ++j) {
        if (j >= column_tiles) break;
        const std::uint16_t* b = b_tile + (j * 8 + row) * g.b_stride + k0 + 2 * quad;
        mma_16816<T>(acc[j], a, *reinterpret_cast<const std::uint32_t*>(b),
                     *reinterpret_cast<const std::uint32_t*>(b + 8));
      }
    }
    // Bias in float, one rounding, then the tile's rows leave as whole 16-byte words: the
    // 64 voxels of a row tile are contiguous in y.
#pragma unroll
    for (int j = 0; j < kMaxColumnTiles; ++j) {
      if (j >= column_tiles) break;
      const int channel = j * 8 + 2 * quad;
      const float bias0 = bias ? bias[channel] : 0.0f, bias1 = bias ? bias[channel + 1] : 0.0f;
      for (int half = 0; half < 2; ++half) {
        const int m = warp * 16 + row + 8 * half;
        const T v0 = from_f32<T>(acc[j][2 * half] + bias0), v1 = from_f32<T>(acc[j][2 * half + 1] + bias1);
        *reinterpret_cast<std::uint32_t*>(out_tile + m * g.cout + channel) = pack_16bit(
            *reinterpret_cast<const std::uint16_t*>(&v0), *reinterpret_cast<const std::uint16_t*>(&v1));
      }
    }
    __syncthreads();
    const int voxels = min(kTileVoxels, g.Wo - ow0);
    uint4* target = reinterpret_cast<uint4*>(y + ((output_row * g.Wo) + ow0) * g.cout);
    const uint4* source = reinterpret_cast<const uint4*>(out_tile);
    for (int j = threadIdx.x; j < voxels * g.cout / 8; j += blockDim.x) target[j] = source[j];
  }
#endif
}

template <typename T> bool built_with_mma() {
  static const bool built = built_with_sm80(narrow_input_mma_kernel<T>);
  return built;
}

}  // namespace

bool narrow_input_conv_mma(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& y,
                           const ConvParams& p) {
  const bool half_width = x.dtype() == DType::bf16 || x.dtype() == DType::f16;
  if (!half_width || weight.dtype() != x.dtype() || p.groups != 1) return false;
  if (x.numel() == 0 || y.numel() == 0) return false;  // nothing to stage (and no sample to divide by)
  const std::int64_t cout = y.dim(4), taps = static_cast<std::int64_t>(p.kernel) * p.kernel * p.kernel;
  if (cout % 8 != 0 || cout > 8 * kMaxColumnTiles) return false;
  // 32-bit offsets within a sample and the staged rows.
  if (x.numel() / x.dim(0) >= (std::int64_t(1) << 31) || y.numel() / y.dim(0) >= (std::int64_t(1) << 31)) return false;
  if (!is_aligned16(y.raw_data()) || !is_aligned16(weight.raw_data())) return false;
  MmaGeometry g{};
  g.N = static_cast<int>(x.dim(0)), g.D = static_cast<int>(x.dim(1)), g.H = static_cast<int>(x.dim(2));
  g.W = static_cast<int>(x.dim(3)), g.cin = static_cast<int>(x.dim(4));
  g.Do = static_cast<int>(y.dim(1)), g.Ho = static_cast<int>(y.dim(2)), g.Wo = static_cast<int>(y.dim(3));
  g.cout = static_cast<int>(cout);
  g.kernel = p.kernel, g.stride = p.stride, g.padding = p.padding, g.dilation = p.dilation;
  g.k_padded = static_cast<int>((taps * g.cin + 15) / 16 * 16);
  g.b_stride = g.k_padded + 8;
  const int reach = (p.kernel - 1) * p.dilation + 1;
  g.region_d = reach, g.region_h = reach, g.region_w = (kTileVoxels - 1) * p.stride + reach;
  g.region = g.region_d * g.region_h * g.region_w * g.cin;
  lay_out_shared_memory(g);
  const std::size_t bytes = static_cast<std::size_t>(g.shared_bytes);
  if (bytes > static_cast<std::size_t>(shared_memory_per_block_optin())) return false;
  bool launched = false;
  with_float_type(x.dtype(), "conv3d", [&](auto tag) {
    using T = decltype(tag);
    if constexpr (is_half_width<T>) {
      if (!built_with_mma<T>()) return;
      const auto kernel = narrow_input_mma_kernel<T>;
      if (bytes > 48 * 1024) {
        check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)),
                   "conv3d narrow input (tensor cores) shared memory");
      }
      // Blocks walk tiles in a grid-stride loop, so each loads the weights once for many tiles.
      const std::int64_t tiles =
          static_cast<std::int64_t>(g.N) * g.Do * g.Ho * ((g.Wo + kTileVoxels - 1) / kTileVoxels);
      const std::int64_t blocks = std::min<std::int64_t>(tiles, resident_blocks(kernel, kWarps * 32, bytes));
      kernel<<<static_cast<unsigned int>(blocks), kWarps * 32, bytes, stream()>>>(ptr_as<T>(x), ptr_as<T>(weight),
                                                                                 ptr(bias), mutable_ptr_as<T>(y), g);
      check_launch("conv3d narrow input (tensor cores)");
      launched = true;
    }
  });
  return launched;
}

}  // namespace voxmamba::kernels::cuda
