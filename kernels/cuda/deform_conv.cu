// The deformable depthwise conv on channels-last volumes on the GPU (network.md, D-LKA): a
// direct kernel in which a thread owns one output voxel and up to three 16-byte groups of its
// channels, so each trilinear corner is one 16-byte load per group and the tap's geometry
// (corner indices and weights, shared by all channels) is computed once per thread.
#include <algorithm>
#include <string>
#include <type_traits>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/half_sample_copy.cuh"
#include "kernels/op_checks.h"

namespace voxmamba::kernels::cuda {
namespace {

constexpr int kDeformTile = 4;

struct DeformGeometry {
  std::int64_t N;
  int D, H, W, C;
  int kernel, dilation;
  int offset_stride;  // channels of an offsets row, 3 K^3 or padded beyond (ops.h)
  HalfSampleLayout copy;  // where the samples lie in the half sample copy, where they are read from it
};

// Whether a tap's eight corners are summed in packed 16-bit FMAs (two channels per
// instruction, no unpacking) rather than in float: for float16 samples, whose 11-bit
// significand rounds the trilinear sum no coarser than the input already is, in 16-byte
// groups. The kernel is bound by instruction issue as much as by L1; on the H200 this took
// base's deformable convs at 128^3 from 21.1 to 16.4 ms per forward with zero offsets, and to
// 17.9 ms (bf16: 21.3) with offsets in [-0.5, 0.5]. S is the samples' type: bfloat16 data is
// sampled from a float16 copy (kHalfSamples).
template <typename S, int G>
constexpr bool kPackedCorners = (std::is_same_v<S, f16> && G == 8);

// Whether a voxel's offsets are read eight taps at a time, in three 16-byte loads, rather than
// three 2-byte loads a tap: each of those touched a line per voxel of the warp, about a tenth
// of the kernel's L1 wavefronts by a count of its accesses (not profiled). On the H200 (base
// 128^3, the deformable convs of a forward, ncu) this took fp16 from 14.21 to 13.80 ms with
// zero offsets and from 15.51 to 14.77 ms with offsets in [-0.5, 0.5]; with no offset loads
// at all it would be 12.71 ms. The fp16 forward went from 35.27 to 34.81 ms. With float
// corner sums the chunk leaves no registers to spare at three groups a thread: it spilled,
// and the bf16 forward (then summed in float) went from 39.36 to 46.26 ms. So the chunks go
// with float16 samples, whatever the offsets' type.
template <typename S>
constexpr bool kChunkedOffsets = std::is_same_v<S, f16>;

// The type the taps' weights are read in: float16 for 16-bit samples, float32 for float32. The
// weights are float32 parameters rounded once to float16 (by the model's loader, or else by a
// cast each call): to 2^-11 relative, finer than bfloat16 activations hold, as the float16
// dense convs' weights are held. A weight beyond float16's range (65504; a depthwise conv's
// are orders of magnitude below) would give infinite outputs; the model's loader refuses such
// weights. A tap then reads half the bytes (one 16-byte load per group, not two) and issues
// fewer loads; the products and their sums stay float. The paths that sum in float (one
// channel a thread, or bfloat16 with no half sample copy) read float16 too, converting as they
// load, so that the loader's weights serve every path without a cast back to float32.
// H200, base 128^3 with the graph, in one run against b1ba3f6: with offsets in [-0.5, 0.5],
// as trained offset heads give, fp16 31.19 -> 30.88 ms (the deformable convs 14.39 -> 14.10
// ms by ncu, the casts 0.04 ms); with zero offsets, two rounds, fp16 29.89 / 29.88 -> 29.81 /
// 29.84 ms, bf16 29.90 / 29.88 -> 29.88 / 29.91 ms.
template <typename S>
using TapWeight = std::conditional_t<std::is_same_v<S, float>, float, f16>;

// Whether bfloat16 data is sampled from its scaled float16 copy (half_sample_copy.cuh), to sum
// the corners in packed half2 and read the offsets in chunks, as float16 does; the offsets
// stay bfloat16 and the sums of the taps float. A bfloat16 value converts to float16 exactly
// (the scale keeps it in range), and the half2 corner sums round finer than bfloat16 holds
// its values, so the result differs from float corner sums only by that rounding. H200, base
// 128^3, the forward with the graph, two rounds: bf16 37.66 / 37.64 -> 34.41 / 34.41 ms, and
// 38.17 -> 35.46 ms with offsets in [-0.5, 0.5]; the copies (a maximum and a copy per conv)
// take 0.17 ms of it. Parity with the fp32 twin stays where it was (base at 128^3: 99.588%
// argmax agreement, as with float sums). Before this, the threads of a voxel shared the taps'
// sample points through warp shuffles in bfloat16 (bf16 39.2 -> 38.8 ms at the time, removed
// as it no longer applies); in fp16, with chunked offsets, that sharing was slower.
template <typename T>
constexpr bool kHalfSamples = std::is_same_v<T, bf16>;

template <typename S>
struct SampleType {
  using type = S;
};

// Calls f(offset, weight) for the eight trilinear corners of a sample: offset od[a] + oh[b] +
// ow[e] from the group's first channel, weight corner[a][b][e].
template <typename F>
__device__ __forceinline__ void for_each_corner(const int (&od)[2], const int (&oh)[2], const int (&ow)[2],
                                                const float (&corner)[2][2][2], F&& f) {
#pragma unroll
  for (int a = 0; a < 2; ++a) {
#pragma unroll
    for (int b = 0; b < 2; ++b) {
#pragma unroll
      for (int e = 0; e < 2; ++e) f(od[a] + oh[b] + ow[e], corner[a][b][e]);
    }
  }
}

// sampled[c] = sum over the corners of corner * x, in float, for the G channels from `group`.
template <typename T, int G>
__device__ __forceinline__ void sum_corners(const T* group, const int (&od)[2], const int (&oh)[2],
                                            const int (&ow)[2], const float (&corner)[2][2][2],
                                            float (&sampled)[G]) {
#pragma unroll
  for (int c = 0; c < G; ++c) sampled[c] = 0.0f;
  for_each_corner(od, oh, ow, corner, [&](int offset, float weight) {
    Vec<T, G> in;
    in.load(group + offset);
#pragma unroll
    for (int c = 0; c < G; ++c) sampled[c] += weight * in.v[c];
  });
}

// Threads cover cubes of kDeformTile^3 voxels (a voxel's threads fastest), so that for each
// tap a warp's samples fall in a compact block of rows that L1 serves to neighbouring
// voxels; along a row of voxels every voxel would touch its own four rows. Slots of partial
// cubes past the volume's faces hold no voxel.
__host__ __device__ __forceinline__ std::int64_t voxel_slots(const DeformGeometry& g) {
  const std::int64_t tiles_d = (g.D + kDeformTile - 1) / kDeformTile,
                     tiles_h = (g.H + kDeformTile - 1) / kDeformTile,
                     tiles_w = (g.W + kDeformTile - 1) / kDeformTile;
  return g.N * tiles_d * tiles_h * tiles_w * kDeformTile * kDeformTile * kDeformTile;
}

// The voxel of slot t: its place, p (its index among all voxels) and the index of its
// sample's first voxel.
struct Voxel {
  int d, h, w;
  bool inside;
  std::int64_t n, p, sample_start;
};

__device__ __forceinline__ Voxel voxel_of_slot(std::int64_t t, const DeformGeometry& g) {
  constexpr int kTileVoxels = kDeformTile * kDeformTile * kDeformTile;
  const int tiles_w = (g.W + kDeformTile - 1) / kDeformTile, tiles_h = (g.H + kDeformTile - 1) / kDeformTile,
            tiles_d = (g.D + kDeformTile - 1) / kDeformTile;
  const int local = static_cast<int>(t % kTileVoxels);
  const std::int64_t tile = t / kTileVoxels;
  Voxel v;
  v.w = static_cast<int>(tile % tiles_w) * kDeformTile + local % kDeformTile;
  v.h = static_cast<int>(tile / tiles_w % tiles_h) * kDeformTile + local / kDeformTile % kDeformTile;
  v.d = static_cast<int>(tile / (static_cast<std::int64_t>(tiles_w) * tiles_h) % tiles_d) * kDeformTile +
        local / (kDeformTile * kDeformTile);
  v.inside = v.w < g.W && v.h < g.H && v.d < g.D;
  const std::int64_t n = tile / (static_cast<std::int64_t>(tiles_w) * tiles_h * tiles_d);
  v.n = n;
  v.sample_start = n * g.D * g.H * g.W;
  v.p = v.sample_start + (static_cast<std::int64_t>(v.d) * g.H + v.h) * g.W + v.w;
  return v;
}

// The accumulators of the thread's Q groups, group q's first channel at first + q * step.
template <typename T, int G, int Q>
__device__ __forceinline__ void start_with_bias(const float* __restrict__ bias, int first, int step,
                                                Vec<T, G> (&acc)[Q]) {
#pragma unroll
  for (int q = 0; q < Q; ++q) {
#pragma unroll
    for (int c = 0; c < G; ++c) acc[q].v[c] = bias ? bias[first + q * step + c] : 0.0f;
  }
}

template <typename T, int G, int Q>
__device__ __forceinline__ void rescale(float factor, Vec<T, G> (&acc)[Q]) {
#pragma unroll
  for (int q = 0; q < Q; ++q) {
#pragma unroll
    for (int c = 0; c < G; ++c) acc[q].v[c] *= factor;
  }
}

// A tap's sample point: its low neighbour along each axis and the fractions past it. The
// position is clamped to [-2, size + 1] first, where every neighbour is already outside, so
// that wild offsets cannot overflow the int conversions.
struct SamplePoint {
  int d0, h0, w0;
  float tz, ty, tx;
};

// Tap k, at (kd, kh, kw) in the kernel, of the voxel at (d, h, w), with its offsets (dz, dy, dx).
__device__ __forceinline__ SamplePoint tap_point(int d, int h, int w, int kd, int kh, int kw, int k, float dz,
                                                 float dy, float dx, const float* __restrict__ offset_bias,
                                                 const DeformGeometry& g) {
  if (offset_bias) dz += offset_bias[3 * k], dy += offset_bias[3 * k + 1], dx += offset_bias[3 * k + 2];
  const int half = (g.kernel - 1) / 2;
  const float z = static_cast<float>(d + g.dilation * (kd - half)) + dz;
  const float y = static_cast<float>(h + g.dilation * (kh - half)) + dy;
  const float x = static_cast<float>(w + g.dilation * (kw - half)) + dx;
  const float cz = fminf(fmaxf(z, -2.0f), g.D + 1.0f), cy = fminf(fmaxf(y, -2.0f), g.H + 1.0f),
              cx = fminf(fmaxf(x, -2.0f), g.W + 1.0f);
  const float fz = floorf(cz), fy = floorf(cy), fx = floorf(cx);
  return {static_cast<int>(fz), static_cast<int>(fy), static_cast<int>(fx), cz - fz, cy - fy, cx - fx};
}

// Whether both neighbours along some axis lie outside, so that the sample reads zero.
__device__ __forceinline__ bool wholly_outside(const SamplePoint& s, const DeformGeometry& g) {
  return s.d0 + 1 < 0 || s.d0 >= g.D || s.h0 + 1 < 0 || s.h0 >= g.H || s.w0 + 1 < 0 || s.w0 >= g.W;
}

// The eight corners of a sample: per axis the two neighbours' clamped element offsets and
// their weights (0 outside), and the products of the weights.
struct Corners {
  int od[2], oh[2], ow[2];
  float weight[2][2][2];
};

// The corners' weights: the products of the two neighbours' weights along each axis.
__device__ __forceinline__ void set_corner_weights(const float (&wd)[2], const float (&wh)[2], const float (&ww)[2],
                                                   Corners& k) {
#pragma unroll
  for (int a = 0; a < 2; ++a) {
#pragma unroll
    for (int b = 0; b < 2; ++b) {
#pragma unroll
      for (int e = 0; e < 2; ++e) k.weight[a][b][e] = wd[a] * wh[b] * ww[e];
    }
  }
}

__device__ __forceinline__ Corners corners_of(const SamplePoint& s, const DeformGeometry& g) {
  Corners k;
  const int stride_d = g.H * g.W * g.C, stride_h = g.W * g.C;
  const float wd[2] = {s.d0 >= 0 && s.d0 < g.D ? 1.0f - s.tz : 0.0f,
                       s.d0 + 1 >= 0 && s.d0 + 1 < g.D ? s.tz : 0.0f};
  const float wh[2] = {s.h0 >= 0 && s.h0 < g.H ? 1.0f - s.ty : 0.0f,
                       s.h0 + 1 >= 0 && s.h0 + 1 < g.H ? s.ty : 0.0f};
  const float ww[2] = {s.w0 >= 0 && s.w0 < g.W ? 1.0f - s.tx : 0.0f,
                       s.w0 + 1 >= 0 && s.w0 + 1 < g.W ? s.tx : 0.0f};
  k.od[0] = min(max(s.d0, 0), g.D - 1) * stride_d, k.od[1] = min(max(s.d0 + 1, 0), g.D - 1) * stride_d;
  k.oh[0] = min(max(s.h0, 0), g.H - 1) * stride_h, k.oh[1] = min(max(s.h0 + 1, 0), g.H - 1) * stride_h;
  k.ow[0] = min(max(s.w0, 0), g.W - 1) * g.C, k.ow[1] = min(max(s.w0 + 1, 0), g.W - 1) * g.C;
  set_corner_weights(wd, wh, ww, k);
  return k;
}

// The corners of a sample not wholly outside, read from the half sample copy
// (half_sample_copy.cuh) as offsets from its voxel (0, 0, 0) of the volume: the low neighbours
// lie at -1 or above and the high ones at the size or below, so all within the copy's zero
// halo (one voxel or more), whose zeros stand for the outside. So no bounds checks and no
// clamps: per axis one multiply and the two fractions. `channels` is C, known at compile time
// where the threads per voxel are (ThreadsPerVoxel), so that a corner's w-neighbour is an
// immediate offset from it. The sums are those of corners_of: an outside neighbour adds its
// weight times zero where it added zero times an inside value.
__device__ __forceinline__ Corners halo_corners_of(const SamplePoint& s, const DeformGeometry& g, int channels) {
  Corners k;
  const int stride_h = g.copy.copy_w * channels, stride_d = g.copy.copy_h * stride_h;
  k.od[0] = s.d0 * stride_d, k.od[1] = k.od[0] + stride_d;
  k.oh[0] = s.h0 * stride_h, k.oh[1] = k.oh[0] + stride_h;
  k.ow[0] = s.w0 * channels, k.ow[1] = k.ow[0] + channels;
  const float wd[2] = {1.0f - s.tz, s.tz}, wh[2] = {1.0f - s.ty, s.ty}, ww[2] = {1.0f - s.tx, s.tx};
  set_corner_weights(wd, wh, ww, k);
  return k;
}

// sum[q] = sum over the corners of corner * x for Q groups of G float16 channels at once,
// group q's first channel at first + q * step (kPackedCorners): half2 FMAs, where the sum of
// at most eight terms with weights summing to at most 1 stays within the range of the inputs.
// Corners outer, groups inner, so that a corner's address is computed once and the groups are
// read at fixed distances from it: immediate offsets in the loads where step is a compile-time
// constant. Before, each group walked its own eight corners (a 64-bit address per group and
// corner); this order, with the threads per voxel fixed at compile time for stages 0 and 1,
// took the deformable convs of a base 128^3 forward from 14.13 to 13.29 ms (H200, fp16, ncu;
// stage 0's dw7d3 3.72 -> 3.51 ms) and the hot kernels' spills from 36 and 44 bytes (fp16,
// bf16) to 8 and 12; the forward with the graph, two rounds interleaved, fp16 31.37 / 31.39 ->
// 30.58 / 30.56 ms, bf16 31.64 / 31.68 -> 30.80 / 30.79 ms. The sums are the same, in the same
// order.
template <int G, int Q>
__device__ __forceinline__ void sum_corners_packed(const f16* first, int step, const Corners& k,
                                                   __half2 (&sum)[Q][G / 2]) {
#pragma unroll
  for (int q = 0; q < Q; ++q) {
#pragma unroll
    for (int c = 0; c < G / 2; ++c) sum[q][c] = __float2half2_rn(0.0f);
  }
  for_each_corner(k.od, k.oh, k.ow, k.weight, [&](int offset, float weight) {
    const __half2 weight2 = __float2half2_rn(weight);
    const f16* corner = first + offset;
#pragma unroll
    for (int q = 0; q < Q; ++q) {
      const uint4 raw = *reinterpret_cast<const uint4*>(corner + q * step);
      const __half2* in = reinterpret_cast<const __half2*>(&raw);
#pragma unroll
      for (int c = 0; c < G / 2; ++c) sum[q][c] = __hfma2(weight2, in[c], sum[q][c]);
    }
  });
}

// acc[q] += tap_weight * sample for the thread's Q groups of G channels, group q's first
// channel at first + q * step; `tap_weights` is the tap's row of the weight.
template <typename S, typename T, typename W, int G, int Q>
__device__ __forceinline__ void add_sample(const S* xn, const W* tap_weights, int first, int step,
                                           const Corners& k, Vec<T, G> (&acc)[Q]) {
  if constexpr (kPackedCorners<S, G>) {
    __half2 sum[Q][G / 2];
    sum_corners_packed<G, Q>(xn + first, step, k, sum);
#pragma unroll
    for (int q = 0; q < Q; ++q) {
      Vec<W, G> tap_weight;
      tap_weight.load(tap_weights + first + q * step);
#pragma unroll
      for (int c = 0; c < G / 2; ++c) {
        const float2 pair = __half22float2(sum[q][c]);
        acc[q].v[2 * c] += tap_weight.v[2 * c] * pair.x;
        acc[q].v[2 * c + 1] += tap_weight.v[2 * c + 1] * pair.y;
      }
    }
  } else {
#pragma unroll
    for (int q = 0; q < Q; ++q) {
      float sampled[G];
      sum_corners<S, G>(xn + first + q * step, k.od, k.oh, k.ow, k.weight, sampled);
      Vec<W, G> tap_weight;  // 16-byte loads when G > 1: C is a multiple of G
      tap_weight.load(tap_weights + first + q * step);
#pragma unroll
      for (int c = 0; c < G; ++c) acc[q].v[c] += tap_weight.v[c] * sampled[c];
    }
  }
}

// network.md's deformable depthwise conv: trilinear samples at p + dilation*t_k + offset,
// neighbours outside the volume read zero (also on axes of size 1). Branch-free corners, so
// that the threads of a warp never diverge at the volume's faces: packed corner sums read the
// half sample copy, whose zero halo holds every outside neighbour (halo_corners_of); the
// others give an outside neighbour weight 0 and read a clamped, valid address (corners_of).
// The halo took the per-tap geometry from bounds checks and clamps on six neighbours to one
// multiply per axis: H100, base 128^3, bf16, offsets in [-0.5, 0.5], stage 0's deformable
// convs (ncu) executed 762 M and 1803 M instructions before, 658 M and 1564 M with it, and
// took 1.50 and 3.63 ms before, 1.46 and 3.51 ms with it (its copy's rows aligned, as
// half_sample_copy.cuh tells). The forward with the graph, two rounds in one run against
// 432614d: bf16 32.18 / 32.18 -> 31.91 / 31.83 ms with those offsets and 31.16 / 31.18 ->
// 30.85 / 30.80 ms with zero offsets; fp16, which now makes a copy, 32.10 / 32.12 -> 31.95 /
// 32.00 ms with those offsets. Index arithmetic is 32-bit within a sample (the host checks
// that a sample, or its copy, has fewer than 2^31 elements).
//
// The kernel is bound by L1 throughput and by issue latency (Nsight Compute on the H200,
// base stage 0's fp16 dw7d3 at 42be402: L1/TEX 81% busy with a 93% hit rate, issue slots
// 47%, half the stall cycles waiting on L1TEX, 25% occupancy at 128 registers; when it was
// first measured, 93% busy at 12% occupancy and 167 registers), so a thread owns Q
// groups of G channels (G = 16 bytes: 8 16-bit values or 4 float32), interleaved: the threads
// of one voxel own groups j, j + T, j + 2T... (T threads per voxel). Per corner, one load
// instruction of those T threads then reads T*16 contiguous bytes, filling whole 32-byte
// sectors (owning adjacent groups, a thread's 16 bytes sat in every other half sector),
// and each tap's geometry (offsets, corners, weights) serves Q*G channels. Three groups
// per thread measured best (base stage 0 dw7: 8.0 ms before, 5.8 ms with Q = 3 at two
// blocks per SM; six, one thread a voxel at stage 0, needs 254 registers and one block per SM:
// the fp16 forward 29.89 -> 34.43 ms, H200, b1ba3f6). Also measured and dropped (bf16, base
// 128^3, all deformable convs of a forward, H200): reading a corner's two w-neighbours as
// one contiguous span of 2C values (four threads a voxel at stage 0, the two rows' shares
// summed in shared memory), 29.1 ms against 21.1 ms; one group per thread, 27.1 ms; each
// tap's corners computed once per voxel in shared memory, 31.1 ms. And (fp16, zero offsets,
// Nsight Compute, 14.14 ms here): x copied into planes of 8 channels,
// [n][group][d][h][w][8], with the 32 lanes of a warp on 32
// consecutive voxels of one plane, so that a corner load reads one contiguous span of about
// 33 x 16 bytes instead of 12-16 cache lines: 14.26 ms with three groups a thread, 15.10 ms
// with six, and the bf16 forward 39.7 -> 50.4 ms. The lines do not bound this kernel, and
// fewer bytes alone do not help either: a thread on a strip of 4 voxels along w, whose
// samples share their w-neighbours wherever a tap's samples are consecutive (4 (4 + 1) loads
// for the strip instead of 32, and one tap-weight load for 4 voxels), took the deformable
// convs from 14.15 to 15.85 ms with zero offsets, where every tap shares, and from 15.41 to
// 22.18 ms with offsets in [-0.5, 0.5] (fp16, ncu). That was one group per thread, within
// 128 registers; more groups were slower still (fp16 forward, zero offsets, 35.1 ms here):
// two with strips of 4 at one block per SM, 39.1 ms; strips of 2 with two or three groups,
// which spilled, 41.2 and 45.3 ms. The geometry each thread then computes for fewer channels
// costs more than the loads it saves: issue and latency, not L1 bytes, bound this kernel.
// Nor did the halo copy's rows split into Q planes of C / Q channels, so that a warp's corner
// load at stage 0 reads 4 x 32 contiguous bytes a row instead of 4 sectors 96 bytes apart
// (H100, bf16, offsets in [-0.5, 0.5], against 4d0b74e in one run): stage 0's L1 busy went
// 92.6 / 82.3% -> 91.8 / 75.9% and its times stayed 1.47 / 3.53 -> 1.47 / 3.51 ms (ncu); the
// forward with the graph, 31.93 / 31.82 -> 31.99 / 31.91 ms.
//
// Also measured and dropped (branch exp/fused-offset-head): the offset head's last map computed
// in this kernel on tensor cores (mma.sync, a warp's 16 or 8 voxels as the rows, 8 or 16 taps'
// offsets a chunk through a table in shared memory), which removes the head's GEMMs (0.99 ms
// of an fp16 forward) and its 541 MB outputs. Stage 0's dw7d3 then took 2.3% more cycles but
// ran at 1.79 GHz instead of 1.98 (ncu, clocks free, one run; the matrix instructions seem to
// bring the clock down, as the tensor-core kernels run), 3.52 -> 3.96 ms; the forward with the
// graph, fp16 30.49 / 30.48 -> 30.97 / 31.02 ms, bf16 30.74 / 30.75 -> 31.16 / 31.10 ms.
//
// ThreadsPerVoxel, where not 0, fixes g.C / (G * Q) at compile time (see sum_corners_packed).
// S is the type of the samples read, T that of the offsets and the output: S = T, or float16
// samples read from x's half sample copy: float16 data as it is, bfloat16 data scaled
// (kHalfSamples). There every sum is made at that scale (the bias scaled to it first) and
// scaled back before the store; the scale is a power of two, so the result is that of the
// unscaled sums.
//
// MinBlocks: the blocks a multiprocessor must hold (registers within 65536 / (256 MinBlocks)).
// Two, except for one group a thread where a grid at two would need a second, partial wave
// and at three fits in one: three then, within 80 registers (4 bytes spilled); larger grids,
// not measured, keep two. H200, base at 128^3, fp16 (ncu, one run):
// stage 2's deformable convs at 16^3 x 192 (384 blocks, 1.45 waves at two) took 152 and 245
// us (5^3, dilated 7^3), at three 124 and 208 us; stage 3's at 8^3 (96 blocks, under one wave
// either way) went from 60 and 79 to 65 and 89 us at three, so they keep two. The forward with
// the graph, three for both (two rounds in one run): fp16 30.15 / 30.11 -> 30.12 / 30.02 ms,
// bf16 30.24 / 30.33 -> 30.08 / 30.12 ms.
template <typename T, typename S, int G, int Q, bool ChunkedOffsets, int ThreadsPerVoxel, int MinBlocks>
__global__ void __launch_bounds__(256, MinBlocks)
    deform_kernel(const S* __restrict__ x, const T* __restrict__ offsets,
                  const TapWeight<S>* __restrict__ weight,
                  const float* __restrict__ bias, const float* __restrict__ offset_bias, T* __restrict__ y,
                  DeformGeometry g, const float* __restrict__ sample_absmax) {
  constexpr bool kScaled = !std::is_same_v<T, S>;
  // Packed corner sums read the half sample copy, with its halo (halo_corners_of).
  constexpr bool kHalo = kPackedCorners<S, G>;
  const int threads_per_voxel = ThreadsPerVoxel > 0 ? ThreadsPerVoxel : g.C / (G * Q),
            channels = ThreadsPerVoxel > 0 ? ThreadsPerVoxel * G * Q : g.C, taps = g.kernel * g.kernel * g.kernel;
  VOXMAMBA_GRID_STRIDE(i, voxel_slots(g) * threads_per_voxel) {
    const int j = static_cast<int>(i % threads_per_voxel);
    const Voxel voxel = voxel_of_slot(i / threads_per_voxel, g);
    if (!voxel.inside) continue;
    const int d = voxel.d, h = voxel.h, w = voxel.w;
    const T* delta = offsets + voxel.p * g.offset_stride;
    // The sample's voxel (0, 0, 0): in the copy, one voxel into the halo along d and h and
    // low_w along w.
    const S* xn = x + voxel.sample_start * g.C;
    if constexpr (kHalo) {
      const int copy_h = g.copy.copy_h, copy_w = g.copy.copy_w;
      const std::int64_t copy_voxels = static_cast<std::int64_t>(g.D + 2) * copy_h * copy_w;
      xn = x + (voxel.n * copy_voxels + (copy_h + 1) * copy_w + g.copy.low_w) * channels;
    }
    // Group q's first channel is first + q * step.
    const int first = j * G, step = threads_per_voxel * G;
    Vec<T, G> acc[Q];
    start_with_bias(bias, first, step, acc);
    float scale = 1.0f;
    if constexpr (kScaled) {
      scale = half_copy_scale(*sample_absmax);
      rescale(scale, acc);
    }
    int kd = 0, kh = 0, kw = 0;
    // Tap k (taken in order) with its offsets (dz, dy, dx).
    const auto add_tap = [&](int k, float dz, float dy, float dx) {
      const SamplePoint point = tap_point(d, h, w, kd, kh, kw, k, dz, dy, dx, offset_bias, g);
      if (++kw == g.kernel) kw = 0, kh += 1;
      if (kh == g.kernel) kh = 0, kd += 1;
      // A sample whose two neighbours along some axis both lie outside reads zero: skip
      // its loads (the warp's other lanes go on). The dilated 7^3 taps reach 9 voxels past
      // the centre: with zero offsets, 21%, 38%, 65% and 92% of them land wholly outside
      // at base's 64^3, 32^3, 16^3 and 8^3 (the 5^3 taps: 4%, 7%, 14%, 27%). H200, fp16, the
      // deformable convs of a base 128^3 forward (ncu): 16.3 ms without the skip, 14.2 ms.
      if (wholly_outside(point, g)) return;
      const Corners corners = kHalo ? halo_corners_of(point, g, channels) : corners_of(point, g);
      add_sample<S, T, TapWeight<S>, G, Q>(xn, weight + k * g.C, first, step, corners, acc);
    };
    if constexpr (!ChunkedOffsets) {
#pragma unroll 1
      for (int k = 0; k < taps; ++k)
        add_tap(k, to_f32(delta[3 * k]), to_f32(delta[3 * k + 1]), to_f32(delta[3 * k + 2]));
    } else {
      // Eight taps' offsets (24 values, 48 bytes) in three 16-byte loads; the last chunk
      // reads no vector past the row, whose length is a multiple of 16 bytes.
      constexpr int kChunk = 16 / sizeof(T);
      const int row_vectors = g.offset_stride / kChunk;
#pragma unroll 1
      for (int k0 = 0; k0 < taps; k0 += kChunk) {
        const int first_vector = 3 * k0 / kChunk;
        const uint4* row = reinterpret_cast<const uint4*>(delta) + first_vector;
        uint4 chunk[3];
#pragma unroll
        for (int m = 0; m < 3; ++m) chunk[m] = first_vector + m < row_vectors ? row[m] : uint4{};
        const T* values = reinterpret_cast<const T*>(chunk);
#pragma unroll
        for (int u = 0; u < kChunk; ++u) {
          if (k0 + u < taps)
            add_tap(k0 + u, to_f32(values[3 * u]), to_f32(values[3 * u + 1]), to_f32(values[3 * u + 2]));
        }
      }
    }
    if constexpr (kScaled) rescale(1.0f / scale, acc);
#pragma unroll
    for (int q = 0; q < Q; ++q) acc[q].store(y + voxel.p * g.C + first + q * step);
  }
}

}  // namespace

Tensor deform_dwconv3d(const Tensor& x, const Tensor& offsets, const Tensor& weight, const Tensor& bias,
                       int kernel, int dilation, const Tensor& offset_bias) {
  check_deform_args(x, offsets, weight, bias, kernel, dilation, offset_bias);
  require_cuda_f32(offset_bias, "deform_dwconv3d", "offset bias");
  require_cuda_float(x, "deform_dwconv3d", "input");
  require_cuda_float(offsets, "deform_dwconv3d", "offsets");
  require_same_dtype(x, offsets, "deform_dwconv3d", "offsets");
  require_cuda_float(weight, "deform_dwconv3d", "weight");
  if (weight.dtype() != DType::f32 && !(weight.dtype() == DType::f16 && x.dtype() != DType::f32)) {
    throw Error(std::string("deform_dwconv3d: weight must be float32, or float16 with 16-bit input; got ") +
                dtype_name(weight.dtype()) + " with " + dtype_name(x.dtype()) + " input");
  }
  require_cuda_f32(bias, "deform_dwconv3d", "bias");
  Tensor y = empty_like_device(x.shape(), x);
  if (x.numel() / std::max<std::int64_t>(1, x.dim(0)) >= (std::int64_t(1) << 31)) {
    throw Error("deform_dwconv3d: a sample of " + shape_string(x.shape()) + " has 2^31 elements or more");
  }
  if (y.numel() == 0) return y;
  // Its copy's layout is filled in where the samples are read from the half sample copy.
  DeformGeometry g{x.dim(0), static_cast<int>(x.dim(1)), static_cast<int>(x.dim(2)), static_cast<int>(x.dim(3)),
                   static_cast<int>(x.dim(4)), kernel, dilation, static_cast<int>(offsets.dim(4)), {}};
  with_float_type(x.dtype(), "deform_dwconv3d", [&](auto tag) {
    using T = decltype(tag);
    // Groups of 16 bytes where C allows; three per thread (else two, else one) where that
    // still leaves half a wave of threads (512 per multiprocessor): at 16^3 x 192 channels
    // three groups would leave most of the GPU idle while each thread walks all 343 taps.
    constexpr int kGroup = 16 / sizeof(T);
    const std::int64_t slots = voxel_slots(g);
    // Asked once: both the choice of groups and the sampling path below depend on it.
    const bool copyable = can_make_half_sample_copy(x);
    // Offsets rows of a multiple of 16 bytes (the model pads them so) are read in chunks with
    // float16 samples (kChunkedOffsets).
    const bool chunked = (g.offset_stride * static_cast<std::int64_t>(sizeof(T))) % 16 == 0 &&
                         is_aligned16(offsets.raw_data());
    const auto launch = [&](auto group, auto per_thread) {
      constexpr int G = decltype(group)::value, Q = decltype(per_thread)::value;
      const int threads_per_voxel = g.C / (G * Q);
      // Samples of type S from `samples` (x, or its half sample copy with, for bfloat16, its maximum).
      const auto go = [&](auto sample_type, auto chunked_offsets, const void* samples, const float* absmax) {
        using S = typename decltype(sample_type)::type;
        const auto run = [&](auto fixed_threads) {
          constexpr bool kChunked = decltype(chunked_offsets)::value;
          constexpr int kFixed = decltype(fixed_threads)::value;
          const unsigned int blocks = blocks_for(slots * threads_per_voxel);
          // The taps' weights as the kernel reads them (TapWeight): float16 for 16-bit samples
          // (the model's loader gives them so), float32 for float32.
          const Tensor tap_weights = cast(weight, std::is_same_v<S, float> ? DType::f32 : DType::f16);
          const auto launch_kernel = [&](auto kernel) {
            kernel<<<blocks, kThreads, 0, stream()>>>(
                static_cast<const S*>(samples), ptr_as<T>(offsets),
                static_cast<const TapWeight<S>*>(tap_weights.raw_data()), ptr(bias), ptr(offset_bias),
                mutable_ptr_as<T>(y), g, absmax);
          };
          // Three blocks a multiprocessor where that makes one wave of two's partial second (MinBlocks).
          if constexpr (Q == 1 && G > 1) {
            const auto three = deform_kernel<T, S, G, Q, kChunked, kFixed, 3>;
            if (blocks > resident_blocks(deform_kernel<T, S, G, Q, kChunked, kFixed, 2>, kThreads) &&
                blocks <= resident_blocks(three, kThreads)) {
              return launch_kernel(three);
            }
          }
          launch_kernel(deform_kernel<T, S, G, Q, kChunked, kFixed, 2>);
        };
        // Base's stages 0 and 1 (48 and 96 channels), which hold most of the work.
        if constexpr (kPackedCorners<S, G> && Q == 3) {
          if (threads_per_voxel == 2) return run(std::integral_constant<int, 2>{});
          if (threads_per_voxel == 4) return run(std::integral_constant<int, 4>{});
        }
        run(std::integral_constant<int, 0>{});
      };
      // 16-bit data in 16-byte groups is sampled from its float16 copy with the halo
      // (kPackedCorners, halo_corners_of); bfloat16 that cannot be copied is summed in float.
      constexpr bool kFloat16Groups = std::is_same_v<T, f16> && G == 8;
      if constexpr (G == 8 && (kHalfSamples<T> || kFloat16Groups)) {
        if (copyable) {
          const HalfSampleCopy copy = make_half_sample_copy(x);
          const float* absmax = copy.absmax.defined() ? ptr(copy.absmax) : nullptr;
          g.copy = copy.layout;
          if (chunked) return go(SampleType<f16>{}, std::true_type{}, copy.values.raw_data(), absmax);
          return go(SampleType<f16>{}, std::false_type{}, copy.values.raw_data(), absmax);
        }
      }
      // Float16 in groups of 8 has its copy (`groups` below asks for it).
      if constexpr (!kFloat16Groups) {
        if constexpr (kChunkedOffsets<T>) {
          if (chunked) return go(SampleType<T>{}, std::true_type{}, x.raw_data(), nullptr);
        }
        go(SampleType<T>{}, std::false_type{}, x.raw_data(), nullptr);
      } else {
        throw Error("deform_dwconv3d: float16 groups chosen for an input with no half sample copy");
      }
    };
    const std::int64_t enough_threads = std::int64_t(512) * multiprocessor_count();
    // Float16 is read in groups only from its copy (halo_corners_of); one it cannot have (an
    // unaligned view, or a sample near 2^31 elements) is read a channel at a time.
    const bool groups = g.C % kGroup == 0 && (!std::is_same_v<T, f16> || copyable);
    const auto fits = [&](int per_thread) {
      return groups && g.C % (per_thread * kGroup) == 0 && slots * (g.C / (per_thread * kGroup)) >= enough_threads;
    };
    using One = std::integral_constant<int, 1>;
    using Group = std::integral_constant<int, kGroup>;
    if (fits(3)) {
      launch(Group{}, std::integral_constant<int, 3>{});
    } else if (fits(2)) {
      launch(Group{}, std::integral_constant<int, 2>{});
    } else if (groups) {
      launch(Group{}, One{});
    } else {
      launch(One{}, One{});
    }
  });
  check_launch("deform_dwconv3d");
  return y;
}

}  // namespace voxmamba::kernels::cuda
