// Dense 3^3 convs into 48 channels as implicit GEMMs on tensor cores, the weight resident in
// shared memory. The full-resolution decoder runs four 48 -> 48 of them at 128^3 (enc0, dec0
// and the head's ResBlocks), and cuDNN's kernels for them work in tiles 64 output channels
// wide and 32 input channels deep: a quarter of each product's columns and a quarter of its
// reduction (48 channels a tap in steps of 32) are padding (H200, float16: 1.18 ms each,
// about 220 TFLOP/s of useful work, against 590 for its 192 -> 96 conv at 64^3). Here the
// GEMM's rows are output voxels, its columns the 48 channels (six n8 tiles), its reduction the
// 27 taps times Cin in steps of 16 that never straddle a tap, so nothing is padding. H200,
// base 128^3, float16 (Nsight Compute): 1.18 -> 0.73 ms each (about 357 TFLOP/s); the forward
// with the graph 33.50 -> 31.63 ms in float16 and 33.89 -> 31.96 ms in bfloat16.
//
// A block (one a multiprocessor, eight warps) keeps B, the weight as [48][27 Cin] 16-bit
// values (124 KB for Cin = 48), in shared memory for every tile it walks; a tile is 3 x 8 x 16
// output voxels (d, h, w), whose 5 x 10 x 18 input voxels it stages with cp.async, zeros
// outside the volume. A warp owns three rows of 16 voxels along w (m16 tiles) and all 48
// columns, so each reduction step loads three A and three B fragments (ldmatrix) for 18
// products; the next step's fragments are loaded before this step's products. Staged voxels
// and B's rows are padded by 8 values (16 bytes) so that the eight rows an ldmatrix reads fall
// in distinct banks: Cin + 8 and 27 Cin + 8 values are odd multiples of 8 when Cin is a
// multiple of 16.
//
// Nsight Compute puts this kernel at about 56% of the shared-memory pipe and a third of the
// issue slots, with one block (8 warps) a multiprocessor: latency, not one unit, bounds it.
// Measured and dropped (H200, base 128^3, fp16, each conv by ncu; the forward with the graph
// against this kernel in the same run): each block walking a contiguous run of tiles along d,
// with the staged planes in a ring and the next tile's new planes staged during this one's
// products (two more barriers a tile), 0.73 -> 0.75 ms; 12 warps of two rows, forward 31.56 ->
// 31.70 ms; fragments two steps ahead, 31.84 ms; both, 31.74 ms (0.77 ms a conv). And the
// products on sm_90a's wgmma (m64n48k16, A from registers through ldmatrix, B from shared
// memory through a descriptor; branch exp/wgmma-resident-conv): 0.73 -> 0.71 ms a conv, the
// forward 31.33 / 31.30 -> 31.27 / 31.24 ms in fp16, not worth a second code path and a
// build for 90a. Also measured and dropped (H200, base 128^3, the forward with the graph, two
// rounds against the same build's ops apart): a residual block's second conv normalising the
// first conv's output as it stages it (instance norm and LeakyReLU, rounded as the norm's own
// pass rounds; an op for both conv-norm pairs, bit for bit their result), which removes that
// pass (106 us at 128^3 x 48, three in a forward). Staged through registers instead of
// cp.async, each conv took 866 us instead of 769 (ncu), and the forward fp16 30.02 / 29.96
// against 30.01 / 29.99 ms, bf16 30.02 / 30.11 against 30.01 / 29.97; staged by cp.async and
// normalised in place in shared memory, fp16 30.20 / 30.16 against 29.98 / 29.98 ms.
#include <algorithm>
#include <cstdint>

#include "kernels/cuda/channel_moments.cuh"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/mma_sm80.cuh"
#include "kernels/cuda/resident_weight_conv_mma.cuh"

namespace voxmamba::kernels::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kRowsPerWarp = 3;  // m16 tiles of 16 voxels along w
constexpr int kTileD = 3, kTileH = 8, kTileW = 16;
static_assert(kTileD * kTileH == kWarps * kRowsPerWarp, "a warp's rows are whole rows of the tile");
constexpr int kRegionD = kTileD + 2, kRegionH = kTileH + 2, kRegionW = kTileW + 2;
constexpr int kRegionVoxels = kRegionD * kRegionH * kRegionW;
constexpr int kTaps = 27;
constexpr int kCout = 48;
constexpr int kColumnTiles = kCout / 8;   // n8 tiles
constexpr int kColumnPairs = kCout / 16;  // an ldmatrix.x4 of B holds two n8 tiles
constexpr int kPad = 8;                   // 16-bit values after each staged voxel and row of B
static_assert(kColumnTiles == 2 * kColumnPairs, "an ldmatrix.x4 of B holds two whole n8 tiles");

struct ResidentGeometry {
  int N, D, H, W, cin;
  int k_steps;       // 27 Cin / 16
  int b_stride;      // values per row of B: 27 Cin + kPad
  int voxel_stride;  // values per staged voxel: Cin + kPad
  int tiles_d, tiles_h, tiles_w;
  // Shared memory in bytes from its start: B, then each step's byte offset into the staged
  // region (by its tap and first channel), then the region, then (with moments) each warp's
  // running (mean, M2) per channel and its count; `shared_bytes` in all.
  int steps_at, region_at, moments_at, shared_bytes;
};

ResidentGeometry geometry_of(const Tensor& x, bool moments) {
  const auto round16 = [](std::int64_t bytes) { return static_cast<int>((bytes + 15) / 16 * 16); };
  ResidentGeometry g{};
  g.N = static_cast<int>(x.dim(0)), g.D = static_cast<int>(x.dim(1)), g.H = static_cast<int>(x.dim(2));
  g.W = static_cast<int>(x.dim(3)), g.cin = static_cast<int>(x.dim(4));
  g.k_steps = kTaps * g.cin / 16;
  g.b_stride = kTaps * g.cin + kPad;
  g.voxel_stride = g.cin + kPad;
  g.tiles_d = (g.D + kTileD - 1) / kTileD, g.tiles_h = (g.H + kTileH - 1) / kTileH;
  g.tiles_w = (g.W + kTileW - 1) / kTileW;
  g.steps_at = round16(std::int64_t(kCout) * g.b_stride * 2);
  g.region_at = g.steps_at + round16(std::int64_t(g.k_steps) * 4);
  g.moments_at = g.region_at + round16(std::int64_t(kRegionVoxels) * g.voxel_stride * 2);
  g.shared_bytes = g.moments_at + (moments ? round16(kWarps * (kCout * sizeof(float2) + sizeof(int))) : 0);
  return g;
}

// With Moments, the kernel also gathers the output's instance-norm statistics
// (channel_moments.cuh) while it writes it: each lane sums the values it stores, and a block
// writes one triple per sample and channel to `partials` ([N][gridDim.x][48]) when it moves
// on to the next sample or ends.
template <typename T, bool Moments>
__global__ void __launch_bounds__(kWarps * 32, 1)
    resident_weight_conv_kernel(const T* __restrict__ x, const T* __restrict__ weight,
                                const float* __restrict__ bias, T* __restrict__ y, ResidentGeometry g,
                                ChannelMoments* __restrict__ partials) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  extern __shared__ __align__(16) unsigned char shared[];
  std::uint16_t* b_tile = reinterpret_cast<std::uint16_t*>(shared);
  int* step_offsets = reinterpret_cast<int*>(shared + g.steps_at);
  std::uint16_t* region = reinterpret_cast<std::uint16_t*>(shared + g.region_at);
  float2* running = reinterpret_cast<float2*>(shared + g.moments_at);  // [warp][channel] (mean, M2)
  int* warp_counts = reinterpret_cast<int*>(running + kWarps * kCout);

  // B[n][k] = weight[k][n] (k = tap * Cin + input channel), from 16-byte words of eight
  // output channels, several loads in flight a thread.
  const int k_total = kTaps * g.cin;
  constexpr int kWordsPerRow = kCout / 8;
  const uint4* weight_words = reinterpret_cast<const uint4*>(weight);
#pragma unroll 4
  for (int j = threadIdx.x; j < k_total * kWordsPerRow; j += blockDim.x) {
    const int k = j / kWordsPerRow, n0 = j % kWordsPerRow * 8;
    const uint4 word = weight_words[j];
    const std::uint16_t* values = reinterpret_cast<const std::uint16_t*>(&word);
#pragma unroll
    for (int i = 0; i < 8; ++i) b_tile[(n0 + i) * g.b_stride + k] = values[i];
  }
  for (int s = threadIdx.x; s < g.k_steps; s += blockDim.x) {
    const int tap = s * 16 / g.cin, c0 = s * 16 % g.cin;
    const int kd = tap / 9, kh = tap / 3 % 3, kw = tap % 3;
    step_offsets[s] = (((kd * kRegionH + kh) * kRegionW + kw) * g.voxel_stride + c0) * 2;
  }

  // Lane l addresses row l % 8 of matrix l / 8 in each ldmatrix. A (a warp's m16 tile i:
  // voxels w = 0..15 of tile row warp * 3 + i): matrices (rows 0-7 | 8-15) x (k 0-7 | 8-15),
  // rows fastest, as the A fragment orders them. B (pair p: channels 16 p .. 16 p + 15):
  // (k 0-7 | 8-15) fastest, then (n 0-7 | 8-15), i.e. b0 and b1 of one n8 tile, then the next.
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, matrix = lane / 8, matrix_row = lane % 8;
  std::uint32_t a_address[kRowsPerWarp];
#pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
    const int r = warp * kRowsPerWarp + i, dz = r / kTileH, hz = r % kTileH;
    const int wz = (matrix & 1) * 8 + matrix_row;
    a_address[i] = shared_address(region) +
                   ((((dz * kRegionH + hz) * kRegionW + wz) * g.voxel_stride) + (matrix >> 1) * 8) * 2;
  }
  std::uint32_t b_address[kColumnPairs];
#pragma unroll
  for (int p = 0; p < kColumnPairs; ++p) {
    const int n = p * 16 + (matrix >> 1) * 8 + matrix_row;
    b_address[p] = shared_address(b_tile) + (n * g.b_stride + (matrix & 1) * 8) * 2;
  }

  using Fragments = std::uint32_t[kRowsPerWarp + kColumnPairs][4];  // A's, then B's
  const auto load = [&](int s, Fragments& f) {
    const std::uint32_t a_offset = step_offsets[s], b_offset = s * 32;
#pragma unroll
    for (int i = 0; i < kRowsPerWarp; ++i) ldmatrix_x4(f[i], a_address[i] + a_offset);
#pragma unroll
    for (int p = 0; p < kColumnPairs; ++p) ldmatrix_x4(f[kRowsPerWarp + p], b_address[p] + b_offset);
  };
  float acc[kRowsPerWarp][kColumnTiles][4];
  const auto multiply = [&](const Fragments& f) {
#pragma unroll
    for (int i = 0; i < kRowsPerWarp; ++i) {
#pragma unroll
      for (int j = 0; j < kColumnTiles; ++j) {
        const std::uint32_t(&b)[4] = f[kRowsPerWarp + j / 2];
        mma_16816<T>(acc[i][j], f[i], b[(j % 2) * 2], b[(j % 2) * 2 + 1]);
      }
    }
  };

  LaneMoments<kColumnTiles> moments;  // Moments: this lane's sums for sample moments_of
  moments.clear();
  std::int64_t moments_of = -1;  // (-1: none yet)
  const auto flush_moments = [&](std::int64_t n) {
    moments.write_warp(running + warp * kCout, warp_counts + warp);
    merge_block_moments<kWarps>(running, warp_counts, kCout, partials + (n * gridDim.x + blockIdx.x) * kCout);
  };
  // Bias in float, added before the one rounding.
  float bias_of[kColumnTiles][2];
#pragma unroll
  for (int j = 0; j < kColumnTiles; ++j) {
#pragma unroll
    for (int e = 0; e < 2; ++e) bias_of[j][e] = bias ? bias[j * 8 + 2 * (lane % 4) + e] : 0.0f;
  }

  const int chunks_per_voxel = g.cin / 8;
  const std::int64_t sample_elements = static_cast<std::int64_t>(g.D) * g.H * g.W * g.cin;
  const std::int64_t tiles = static_cast<std::int64_t>(g.N) * g.tiles_d * g.tiles_h * g.tiles_w;
  for (std::int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const int w0 = static_cast<int>(tile % g.tiles_w) * kTileW;
    const int h0 = static_cast<int>(tile / g.tiles_w % g.tiles_h) * kTileH;
    const int d0 =
        static_cast<int>(tile / (static_cast<std::int64_t>(g.tiles_w) * g.tiles_h) % g.tiles_d) * kTileD;
    const std::int64_t n = tile / (static_cast<std::int64_t>(g.tiles_w) * g.tiles_h * g.tiles_d);
    const T* xn = x + n * sample_elements;
    if constexpr (Moments) {
      if (n != moments_of) {  // the same for the whole block
        if (moments_of >= 0) flush_moments(moments_of);
        moments_of = n;
      }
    }
    __syncthreads();  // B and the steps are written; the previous tile's region is no longer read
    for (int j = threadIdx.x; j < kRegionVoxels * chunks_per_voxel; j += blockDim.x) {
      const int v = j / chunks_per_voxel, c = j % chunks_per_voxel;
      const int d = d0 - 1 + v / (kRegionW * kRegionH), h = h0 - 1 + v / kRegionW % kRegionH,
                w = w0 - 1 + v % kRegionW;
      const bool inside = d >= 0 && d < g.D && h >= 0 && h < g.H && w >= 0 && w < g.W;
      const T* source = inside ? xn + ((d * g.H + h) * g.W + w) * g.cin + c * 8 : x;
      cp_async_16_or_zero(shared_address(region + v * g.voxel_stride + c * 8), source, inside);
    }
    cp_async_wait_all();
    __syncthreads();

#pragma unroll
    for (int i = 0; i < kRowsPerWarp; ++i) {
#pragma unroll
      for (int j = 0; j < kColumnTiles; ++j) acc[i][j][0] = acc[i][j][1] = acc[i][j][2] = acc[i][j][3] = 0.0f;
    }
    Fragments even, odd;
    load(0, even);
#pragma unroll 1
    for (int s = 0; s < g.k_steps; s += 2) {
      if (s + 1 < g.k_steps) load(s + 1, odd);
      multiply(even);
      if (s + 1 < g.k_steps) {
        if (s + 2 < g.k_steps) load(s + 2, even);
        multiply(odd);
      }
    }

    // Lane l holds voxels l / 4 and l / 4 + 8 of each m16 tile, channels 2 (l % 4) and the
    // next of each n8 tile: written as 4-byte pairs, and with Moments summed as written.
#pragma unroll
    for (int i = 0; i < kRowsPerWarp; ++i) {
      const int r = warp * kRowsPerWarp + i, d = d0 + r / kTileH, h = h0 + r % kTileH;
      if (d >= g.D || h >= g.H) continue;
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int w = w0 + lane / 4 + 8 * half;
        if (w >= g.W) continue;
        const auto stored = [&](int j, int e) {
          return from_f32<T>(acc[i][j][2 * half + e] + bias_of[j][e]);
        };
        if constexpr (Moments) moments.start_voxel([&](int j, int e) { return to_f32(stored(j, e)); });
        const std::int64_t voxel = ((n * g.D + d) * g.H + h) * static_cast<std::int64_t>(g.W) + w;
#pragma unroll
        for (int j = 0; j < kColumnTiles; ++j) {
          const T v0 = stored(j, 0), v1 = stored(j, 1);
          *reinterpret_cast<std::uint32_t*>(y + voxel * kCout + j * 8 + 2 * (lane % 4)) = pack_16bit(
              *reinterpret_cast<const std::uint16_t*>(&v0), *reinterpret_cast<const std::uint16_t*>(&v1));
          if constexpr (Moments) moments.add(j, 0, to_f32(v0)), moments.add(j, 1, to_f32(v1));
        }
      }
    }
  }
  if constexpr (Moments) {
    if (moments_of >= 0) flush_moments(moments_of);
  }
#endif
}

}  // namespace

bool resident_weight_conv_mma(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& y,
                              const ConvParams& p, MomentPartials* moments) {
  const bool half_width = x.dtype() == DType::bf16 || x.dtype() == DType::f16;
  if (!half_width || weight.dtype() != x.dtype()) return false;
  if (p.kernel != 3 || p.stride != 1 || p.padding != 1 || p.dilation != 1 || p.groups != 1) return false;
  const std::int64_t cin = x.dim(4);
  if (y.dim(4) != kCout || cin < 16 || cin % 16 != 0) return false;
  if (x.numel() == 0 || y.numel() == 0) return false;
  // 32-bit offsets within a sample.
  if (x.numel() / x.dim(0) >= (std::int64_t(1) << 31)) return false;
  if (!is_aligned16(x.raw_data()) || !is_aligned16(weight.raw_data())) return false;
  const ResidentGeometry g = geometry_of(x, moments != nullptr);
  if (g.shared_bytes > shared_memory_per_block_optin()) return false;
  bool launched = false;
  with_float_type(x.dtype(), "conv3d", [&](auto tag) {
    using T = decltype(tag);
    if constexpr (is_half_width<T>) {
      const auto run = [&](auto kernel) {
        static const bool built = built_with_sm80(kernel);
        if (!built) return;
        check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, g.shared_bytes),
                   "conv3d resident weights (tensor cores) shared memory");
        // One block a multiprocessor walks tiles in a grid-stride loop, loading the weight once.
        const std::int64_t tiles = static_cast<std::int64_t>(g.N) * g.tiles_d * g.tiles_h * g.tiles_w;
        const std::int64_t blocks = std::min<std::int64_t>(tiles, multiprocessor_count());
        ChannelMoments* partials = nullptr;
        if (moments) {
          *moments = empty_moment_partials(g.N, blocks, kCout, x.device());
          partials = static_cast<ChannelMoments*>(moments->triples.raw_data());
        }
        kernel<<<static_cast<unsigned int>(blocks), kWarps * 32, g.shared_bytes, stream()>>>(
            ptr_as<T>(x), ptr_as<T>(weight), ptr(bias), mutable_ptr_as<T>(y), g, partials);
        check_launch("conv3d resident weights (tensor cores)");
        launched = true;
      };
      if (moments) {
        run(resident_weight_conv_kernel<T, true>);
      } else {
        run(resident_weight_conv_kernel<T, false>);
      }
    }
  });
  return launched;
}

}  // namespace voxmamba::kernels::cuda
