// The selective scan on the GPU (ops.h), over an orientation's tokens by index
// (token_walk.cuh), never through a reordered copy. It is chunked so the whole GPU works on one
// long sequence (gpu.md: one block per channel walking 262,144 tokens leaves most SMs idle):
// (1) each chunk scans from a zero state and records its summed dt (its decay is
// exp(A sum dt)) and end state, (2) a pass composes the chunks' (decay, state) pairs into
// each chunk's incoming state (segments of chunks in parallel: scan_carry_kernel), (3) each
// chunk rescans from its incoming state and writes y.
#include <algorithm>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/token_walk.cuh"
#include "kernels/op_checks.h"

namespace voxmamba::kernels::cuda {
namespace {

template <typename T>
struct ScanPointers {
  const T *u, *delta, *B, *C;
  const float *delta_bias, *A, *D;
  std::int64_t N, L, E, S, chunk, chunks;
  TokenIndex index;
  const T *sum, *gate;  // the optional epilogue (ops.h), null where absent
  // Elements from one token's B (and C) row to the next: S, or P in the projected form,
  // whose delta comes from dt_in (x_proj's rows, stride P, `rank` values) and dt_weight
  // [rank, E] (delta is null then).
  std::int64_t row_stride;
  const T* dt_in;
  const float* dt_weight;
  int rank;
};

// delta of channel e at token row `row` in the projected form: dt_in @ dt_weight in float,
// rounded to T as dt_proj's output would be (ops.h).
template <typename T>
__device__ __forceinline__ float projected_delta(const ScanPointers<T>& p, std::int64_t row, std::int64_t e) {
  const T* __restrict__ dt_in = p.dt_in + row * p.row_stride;
  float delta = 0.0f;
  for (int r = 0; r < p.rank; ++r) delta += to_f32(dt_in[r]) * p.dt_weight[r * p.E + e];
  return to_f32(from_f32<T>(delta));
}

// The epilogue's inputs at element `at` (token row * E + channel), loaded when a token's walk
// begins so that their latency hides behind its states' arithmetic. H200, base 128^3, fp16,
// the output kernels of a forward (Nsight Compute): 1.84 ms without the epilogue, 2.60 ms
// with these loads just before the store (each token waited for them), 2.12 ms loaded here.
struct Epilogue {
  float sum = 0.0f, gate = 0.0f;
};
template <typename T>
__device__ __forceinline__ Epilogue load_epilogue(const ScanPointers<T>& p, std::int64_t at) {
  Epilogue in;
  if (p.sum) in.sum = to_f32(p.sum[at]);
  if (p.gate) in.gate = to_f32(p.gate[at]);
  return in;
}

// y at element `at`: the scan's value, plus sum, times SiLU(gate), rounded once.
template <typename T>
__device__ __forceinline__ void store_output(const ScanPointers<T>& p, T* __restrict__ y, std::int64_t at,
                                             float value, const Epilogue& in) {
  value += in.sum;
  if (p.gate) value *= silu_f32(in.gate);
  y[at] = from_f32<T>(value);
}

constexpr int kMaxStates = 64;

// One token's S values of B or C as floats: 16-byte loads when the row allows (S = 16).
template <int kStates, typename T>
__device__ __forceinline__ void load_states(const T* row, float* out, std::int64_t S) {
  if constexpr (kStates > 0) {
    Vec<T, kStates> values;
    values.load(row);
#pragma unroll
    for (int s = 0; s < kStates; ++s) out[s] = values.v[s];
  } else {
    for (std::int64_t s = 0; s < S; ++s) out[s] = to_f32(row[s]);
  }
}

// exp2 as the one MUFU instruction: exp2f adds a range check and two rescaling multiplies
// per call for subnormal results (Nsight Compute: the scan kernels are issue bound), and a
// decay below 2^-126 flushed to zero changes no state by a float's resolution.
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// softplus as PyTorch defines it (x above 20); the fast intrinsics are accurate to a few ulp
// here, and below -15 log(1 + e^x) is e^x to float precision.
__device__ __forceinline__ float softplus(float raw) {
  return raw > 20.0f ? raw : (raw < -15.0f ? __expf(raw) : __logf(1.0f + __expf(raw)));
}

// Walks chunk `c` of channel e of sample n from state h. The summary phase (kOutput false)
// adds the chunk's dt into `dt_sum` (its total decay per state is exp(A * sum dt): one
// exponential per state instead of a product of one per token); the output phase writes y.
// exp(dt A) is computed as exp2(dt * A log2 e).
// The phase is a template parameter and the pointers are restrict-qualified locals, so the
// compiler may issue the next tokens' loads (independent of h) while this token computes.
template <int kStates, bool kOutput, typename T>
__device__ void scan_chunk(const ScanPointers<T>& p, std::int64_t n, std::int64_t e, std::int64_t c, float* h,
                           float* dt_sum, T* __restrict__ y) {
  constexpr int kSlots = kStates > 0 ? kStates : kMaxStates;
  const std::int64_t S = kStates > 0 ? kStates : p.S;
  const T* __restrict__ u = p.u;
  const T* __restrict__ delta = p.delta;
  const T* __restrict__ B = p.B;
  const T* __restrict__ C = p.C;
  float a[kSlots], b[kSlots], cm[kSlots];
  for (std::int64_t s = 0; s < S; ++s) a[s] = p.A[e * S + s] * 1.4426950408889634f;
  const std::int64_t begin = c * p.chunk, end = min(p.L, begin + p.chunk);
  const float bias = p.delta_bias[e], skip = p.D[e];
  TokenWalker walker(p.index, static_cast<int>(begin));
#pragma unroll 2
  for (std::int64_t i = begin; i < end; ++i, walker.step()) {
    const std::int64_t token = n * p.L + walker.token;
    const float raw = (p.dt_in ? projected_delta(p, token, e) : to_f32(delta[token * p.E + e])) + bias;
    const float dt = softplus(raw);
    const float x = to_f32(u[token * p.E + e]), dt_x = dt * x;
    load_states<kStates, T>(B + token * p.row_stride, b, S);
    Epilogue epilogue;
    if constexpr (kOutput) {
      epilogue = load_epilogue(p, token * p.E + e);
      load_states<kStates, T>(C + token * p.row_stride, cm, S);
    }
    float out = 0.0f;
#pragma unroll
    for (std::int64_t s = 0; s < S; ++s) {
      h[s] = fast_exp2(dt * a[s]) * h[s] + dt_x * b[s];
      if constexpr (kOutput) out += cm[s] * h[s];
    }
    if constexpr (kOutput) {
      store_output(p, y, token * p.E + e, out + skip * x, epilogue);
    } else {
      *dt_sum += dt;
    }
  }
}

// Blocks of 32 channels (neighbouring threads read neighbouring u, delta) by kChunksPerBlock
// chunks: E = 96 fills three warps exactly, where blocks of 64 channels would idle a quarter.
constexpr int kChannelsPerBlock = 32, kChunksPerBlock = 4;

template <int kStates, typename T>
__global__ void scan_chunk_summary_kernel(ScanPointers<T> p, float* chunk_dt, float* chunk_state) {
  const std::int64_t e = blockIdx.x * static_cast<std::int64_t>(kChannelsPerBlock) + threadIdx.x;
  const std::int64_t c = blockIdx.y * static_cast<std::int64_t>(kChunksPerBlock) + threadIdx.y,
                     n = blockIdx.z;
  if (e >= p.E || c >= p.chunks) return;
  // The states' count as a constant where it is one, so that h stays in registers.
  const std::int64_t S = kStates > 0 ? kStates : p.S;
  float h[kStates > 0 ? kStates : kMaxStates];
  for (std::int64_t s = 0; s < S; ++s) h[s] = 0.0f;
  float dt_sum = 0.0f;
  scan_chunk<kStates, false, T>(p, n, e, c, h, &dt_sum, nullptr);
  chunk_dt[(n * p.chunks + c) * p.E + e] = dt_sum;
  const std::int64_t base = ((n * p.chunks + c) * p.E + e) * S;
  for (std::int64_t s = 0; s < S; ++s) chunk_state[base + s] = h[s];
}

// Composes (decay, state) pairs in order: incoming[c] = decay[c-1] * incoming[c-1] + state[c-1],
// where chunk c's decay of state s of channel e is exp(A[e, s] * chunk_dt[c, e]): one float a
// chunk and channel is read instead of S (the pass is bound by memory). Overwrites
// chunk_state with each chunk's incoming state. A block holds blockDim.x (sample, channel,
// state) lanes by blockDim.y segments of the chunks (carry_shape). With 4,096 chunks at stage
// 0 (of 64 tokens then), one thread walking them all took 0.54 ms a scan (Nsight Compute,
// H200), more than the scan itself: here each thread composes its segment's pairs into one
// (the pairs compose as (a2 a1, a2 b1 + b2)), the segments' incoming states follow from the
// earlier segments' compositions in shared memory, and each thread rewalks its segment from
// its incoming state. Fixed order, so the result is deterministic.
__global__ void __launch_bounds__(1024)
    scan_carry_kernel(const float* __restrict__ chunk_dt, const float* __restrict__ A,
                      float* __restrict__ chunk_state, std::int64_t chunks, std::int64_t E, std::int64_t S) {
  extern __shared__ float carry_shared[];  // decays then states, [segment][lane] each
  const int lane = threadIdx.x, segment = threadIdx.y, lanes_per_block = blockDim.x, segments = blockDim.y;
  float* segment_decay = carry_shared;
  float* segment_state = carry_shared + segments * lanes_per_block;
  const std::int64_t lanes = E * S, es = blockIdx.x * static_cast<std::int64_t>(lanes_per_block) + lane,
                     n = blockIdx.y;
  const bool active = es < lanes;
  const std::int64_t e = active ? es / S : 0;
  const float a_log2 = active ? A[es] * 1.4426950408889634f : 0.0f;  // A is [E, S]: row es of the lanes
  const std::int64_t per_segment = (chunks + segments - 1) / segments;
  const std::int64_t c0 = min(chunks, segment * per_segment), c1 = min(chunks, c0 + per_segment);
  const std::int64_t base = n * chunks * lanes + es, dt_base = n * chunks * E + e;
  float decay = 1.0f, state = 0.0f;
  if (active) {
#pragma unroll 8
    for (std::int64_t c = c0; c < c1; ++c) {
      const float a = fast_exp2(a_log2 * chunk_dt[dt_base + c * E]);
      state = a * state + chunk_state[base + c * lanes];
      decay *= a;
    }
  }
  segment_decay[segment * lanes_per_block + lane] = decay;
  segment_state[segment * lanes_per_block + lane] = state;
  __syncthreads();
  if (!active || c0 == c1) return;
  float carry = 0.0f;
  for (int s = 0; s < segment; ++s) {
    carry = segment_decay[s * lanes_per_block + lane] * carry + segment_state[s * lanes_per_block + lane];
  }
#pragma unroll 8
  for (std::int64_t c = c0; c < c1; ++c) {
    const float a = fast_exp2(a_log2 * chunk_dt[dt_base + c * E]), b = chunk_state[base + c * lanes];
    chunk_state[base + c * lanes] = carry;
    carry = a * carry + b;
  }
}

// The carry kernel's block: up to 16 chunks a segment, in a power of two of segments up to
// 128, by at least 8 lanes (one 32-byte sector of each chunk's states) and 256 threads where
// the segments leave room. Stage 0 of base (2,048 chunks) gets 128 segments of 16 chunks by
// 8 lanes, as all stages did before. That gave stage 3 (32 chunks) 1,536 blocks of 1,024
// threads, nearly all idle: H200, Nsight Compute, 44.5 us a carry there, 4.0 us now; stage 1
// (512 chunks) 29 us, now 11.
dim3 carry_shape(std::int64_t chunks) {
  unsigned int segments = 1;
  while (segments < 128 && segments * std::int64_t(16) < chunks) segments *= 2;
  return dim3(std::max(8u, 256u / segments), segments);
}

template <int kStates, typename T>
__global__ void scan_output_kernel(ScanPointers<T> p, const float* incoming, T* y) {
  const std::int64_t e = blockIdx.x * static_cast<std::int64_t>(kChannelsPerBlock) + threadIdx.x;
  const std::int64_t c = blockIdx.y * static_cast<std::int64_t>(kChunksPerBlock) + threadIdx.y,
                     n = blockIdx.z;
  if (e >= p.E || c >= p.chunks) return;
  const std::int64_t S = kStates > 0 ? kStates : p.S;  // a constant where it is one, as above
  float h[kStates > 0 ? kStates : kMaxStates];
  const std::int64_t base = ((n * p.chunks + c) * p.E + e) * S;
  for (std::int64_t s = 0; s < S; ++s) h[s] = incoming[base + s];
  scan_chunk<kStates, true, T>(p, n, e, c, h, nullptr, y);
}

// The staged path (S = 16, E a multiple of 32, 16-byte aligned rows): the walk above waits
// on its global loads (Nsight Compute, H200, base stage 0: 52% of warp cycles stalled on
// L1TEX, issue slots 57% busy), because a token's loads are issued a token or two ahead. Here
// the warp of a chunk (32 channels walking the same tokens) first copies a tile of tokens into
// shared memory, one token per lane, every load of the tile in flight at once: u and delta as
// stored (the block's 32 channels of a token are one contiguous row), B and C converted to
// float once per token rather than once per channel. The walk then reads only shared memory.
// H200, base 128^3, all scans of a forward: 5.28 ms before, 4.35 ms staged. Also measured
// and dropped: staging softplus(delta + bias) as floats and u one channel per lane (each lane
// loading its channel of every token of the tile), 5.85 ms; and staging the epilogue's rows
// too, with y written over u in the tile and stored a row a lane: 48 KB of tiles a block cost
// warps, and stage 0's output walks took 236 us where they take 229 (same forward time).
// Nor is the walk bound by the MUFU pipe that its exponentials use (stage 0's first fp16
// scan, Nsight Compute): the summary keeps it 73% busy and issues in 52% of cycles, at 37.5%
// theoretical occupancy (six blocks by shared memory, and by registers in the output walk).
// Measured and dropped (H200, base 128^3 with the graph, two rounds in one run; branch
// exp/scan-fma-exp2): 3, 4 or 5 of a token's 16 decays as a degree-5 polynomial on the FMA
// pipe, as FlashAttention 4 does (with 4, the MUFU pipe 57% busy and issue 71%, the summary
// still 158 us, the output walk 197 -> 215 us; fp16 forward 30.35 / 30.38 ms with none,
// 30.36 / 30.41 with 3, 30.52 / 30.48 with 4, 30.56 / 30.57 with 5); and each token's dt, x
// and epilogue read a token ahead (30.45 / 30.42 -> 30.52 / 30.52 ms). Nor is occupancy the
// bound (branch exp/scan-occupancy): tiles of 16 tokens (16.6 KB a block) with registers
// bounded for 7 or 8 blocks a multiprocessor raised the theoretical occupancy to 43.75% and
// 50% (achieved 31.5 -> 35.3 and 39.1%), but the summary stayed at 156-158 us and the output
// walk went from 198 to 202-204 us (it spills 16 or 32 bytes); fp16 forward 30.35 / 30.34 ms,
// 30.31 / 30.27 with 7 blocks, 30.32 / 30.32 with 8 (bf16 30.46 / 30.37, 30.41 / 30.43,
// 30.46 / 30.39).
constexpr int kTiledStates = 16;
// 32 tokens a tile for 16-bit types, 16 for float32, whose rows take twice the space: the
// tiles of a block's four warps stay within 48 KB of static shared memory.
template <typename T>
constexpr int kScanTile = sizeof(T) == 2 ? 32 : 16;

template <typename T>
struct alignas(16) ScanTile {
  float B[kScanTile<T>][kTiledStates];
  float C[kScanTile<T>][kTiledStates];
  T u[kScanTile<T>][kChannelsPerBlock];
  T delta[kScanTile<T>][kChannelsPerBlock];
  int token[kScanTile<T>];
};

// The block's 32 channels of one token row, as 16-byte words.
template <typename T>
__device__ __forceinline__ void copy_row(const T* __restrict__ from, T* __restrict__ to) {
  constexpr int kWords = kChannelsPerBlock * static_cast<int>(sizeof(T)) / 16;
  const uint4* source = reinterpret_cast<const uint4*>(from);
  uint4* target = reinterpret_cast<uint4*>(to);
#pragma unroll
  for (int w = 0; w < kWords; ++w) target[w] = source[w];
}

template <typename T>
__device__ __forceinline__ void stage_states(const T* __restrict__ row, float (&to)[kTiledStates]) {
  Vec<T, kTiledStates> values;
  values.load(row);
#pragma unroll
  for (int s = 0; s < kTiledStates; s += 4) {
    *reinterpret_cast<float4*>(&to[s]) =
        make_float4(values.v[s], values.v[s + 1], values.v[s + 2], values.v[s + 3]);
  }
}

// The block's 32 channels of delta at token row `row` in the projected form, as
// projected_delta forms them, written to the tile as copy_row writes a stored row: the lane
// staging a token forms its deltas (R multiply-adds each, dt_weight's rows read as float4
// words that every lane of the warp shares), so the walk itself is the same in both forms.
// dt_in is read a 16-byte word at a time (its row starts on 16 bytes where the staged walk
// runs, and B and C follow it, so a word past R stays in the row) and a word's ranks are
// unrolled, so that their weight loads issue together rather than one rank's after another's:
// the lane's staging is on the warp's path before every tile. The sums run over r in order,
// as before. H200, base 128^3 with the graph, two rounds in one run (fp16, then bf16):
// 31af03d (four GEMMs and a stored delta) 29.93 / 29.99 and 29.96 / 30.04 ms; one value of
// dt_in a rank 30.27 / 30.28 and 30.25 / 30.25; by words 29.93 / 29.93 and 29.93 / 29.91, with
// 0.05 GiB less peak memory. ncu (fp16): scans 4.42 -> 5.27 -> 4.99 ms, linear maps 3.08 ->
// 2.27 -> 2.41 ms. Also measured and dropped: delta formed E-wide by its own kernel before
// the walks, 29.98 / 29.96 and 29.99 / 29.98 ms (peak 2.950 GiB); and, where R fits one word
// (stages 0 and 1), that word read once for the four groups, kept as 4 raw registers: fp16
// 29.89 / 29.88 -> 29.92 / 29.91 ms, bf16 29.90 / 29.88 -> 29.91 / 29.91, scans 4.973 -> 4.970
// ms (ncu, offsets 0.5): no gain, so the rereads (L1 hits) stay.
template <typename T>
__device__ __forceinline__ void stage_projected_deltas(const ScanPointers<T>& p, std::int64_t row,
                                                       std::int64_t e0, T* __restrict__ to) {
  constexpr int kGroup = 8;  // channels formed at once: a 16-byte word of 16-bit values
  constexpr int kWord = 16 / static_cast<int>(sizeof(T));  // dt_in values in a 16-byte word
  const T* __restrict__ dt_in = p.dt_in + row * p.row_stride;
#pragma unroll 1
  for (int g = 0; g < kChannelsPerBlock; g += kGroup) {
    Vec<T, kGroup> deltas;
#pragma unroll
    for (int k = 0; k < kGroup; ++k) deltas.v[k] = 0.0f;
#pragma unroll 1
    for (int r0 = 0; r0 < p.rank; r0 += kWord) {
      Vec<T, kWord> x;
      x.load(dt_in + r0);
#pragma unroll
      for (int k = 0; k < kWord; ++k) {
        if (r0 + k >= p.rank) break;
        const float4* w = reinterpret_cast<const float4*>(p.dt_weight + (r0 + k) * p.E + e0 + g);
#pragma unroll
        for (int q = 0; q < kGroup / 4; ++q) {
          const float4 w4 = __ldg(w + q);
          deltas.v[4 * q] += x.v[k] * w4.x;
          deltas.v[4 * q + 1] += x.v[k] * w4.y;
          deltas.v[4 * q + 2] += x.v[k] * w4.z;
          deltas.v[4 * q + 3] += x.v[k] * w4.w;
        }
      }
    }
    deltas.store(to + g);  // rounded to T here
  }
}

// scan_chunk for the staged path: channel e = e0 + lane of sample n, chunk c, one warp.
template <bool kOutput, typename T>
__device__ void scan_chunk_staged(const ScanPointers<T>& p, ScanTile<T>& tile, std::int64_t n, int lane,
                                  std::int64_t e0, std::int64_t c, float (&h)[kTiledStates], float* dt_sum,
                                  T* __restrict__ y) {
  constexpr int kTile = kScanTile<T>;
  const std::int64_t e = e0 + lane;
  float a[kTiledStates];
#pragma unroll
  for (int s = 0; s < kTiledStates; ++s) a[s] = p.A[e * kTiledStates + s] * 1.4426950408889634f;
  const float bias = p.delta_bias[e], skip = p.D[e];
  const int begin = static_cast<int>(c * p.chunk), end = static_cast<int>(min(p.L, (c + 1) * p.chunk));
  for (int first = begin; first < end; first += kTile) {
    const int count = min(kTile, end - first);
    if (lane < count) {
      const int token = p.index(first + lane);
      const std::int64_t row = n * p.L + token;
      tile.token[lane] = token;
      stage_states(p.B + row * p.row_stride, tile.B[lane]);
      if constexpr (kOutput) stage_states(p.C + row * p.row_stride, tile.C[lane]);
      copy_row(p.u + row * p.E + e0, tile.u[lane]);
      if (p.dt_in) {
        stage_projected_deltas(p, row, e0, tile.delta[lane]);
      } else {
        copy_row(p.delta + row * p.E + e0, tile.delta[lane]);
      }
    }
    __syncwarp();
    for (int t = 0; t < count; ++t) {
      std::int64_t at = 0;
      Epilogue epilogue;
      if constexpr (kOutput) {
        at = (n * p.L + tile.token[t]) * p.E + e;
        epilogue = load_epilogue(p, at);
      }
      const float dt = softplus(to_f32(tile.delta[t][lane]) + bias);
      const float x = to_f32(tile.u[t][lane]), dt_x = dt * x;
      float out = 0.0f;
#pragma unroll
      for (int s = 0; s < kTiledStates; s += 4) {
        const float4 b = *reinterpret_cast<const float4*>(&tile.B[t][s]);
        h[s] = fast_exp2(dt * a[s]) * h[s] + dt_x * b.x;
        h[s + 1] = fast_exp2(dt * a[s + 1]) * h[s + 1] + dt_x * b.y;
        h[s + 2] = fast_exp2(dt * a[s + 2]) * h[s + 2] + dt_x * b.z;
        h[s + 3] = fast_exp2(dt * a[s + 3]) * h[s + 3] + dt_x * b.w;
        if constexpr (kOutput) {
          const float4 cm = *reinterpret_cast<const float4*>(&tile.C[t][s]);
          out += cm.x * h[s] + cm.y * h[s + 1] + cm.z * h[s + 2] + cm.w * h[s + 3];
        }
      }
      if constexpr (kOutput) {
        store_output(p, y, at, out + skip * x, epilogue);
      } else {
        *dt_sum += dt;
      }
    }
    __syncwarp();  // the next tile overwrites this one
  }
}

template <typename T>
__global__ void scan_staged_summary_kernel(ScanPointers<T> p, float* chunk_dt, float* chunk_state) {
  __shared__ ScanTile<T> tiles[kChunksPerBlock];
  const int lane = threadIdx.x;
  const std::int64_t e0 = blockIdx.x * static_cast<std::int64_t>(kChannelsPerBlock);
  const std::int64_t c = blockIdx.y * static_cast<std::int64_t>(kChunksPerBlock) + threadIdx.y,
                     n = blockIdx.z;
  if (c >= p.chunks) return;  // the whole warp: c is the warp's
  float h[kTiledStates];
#pragma unroll
  for (int s = 0; s < kTiledStates; ++s) h[s] = 0.0f;
  float dt_sum = 0.0f;
  scan_chunk_staged<false, T>(p, tiles[threadIdx.y], n, lane, e0, c, h, &dt_sum, nullptr);
  const std::int64_t e = e0 + lane;
  chunk_dt[(n * p.chunks + c) * p.E + e] = dt_sum;
  float* state = chunk_state + ((n * p.chunks + c) * p.E + e) * kTiledStates;
#pragma unroll
  for (int s = 0; s < kTiledStates; ++s) state[s] = h[s];
}

template <typename T>
__global__ void scan_staged_output_kernel(ScanPointers<T> p, const float* incoming, T* y) {
  __shared__ ScanTile<T> tiles[kChunksPerBlock];
  const int lane = threadIdx.x;
  const std::int64_t e0 = blockIdx.x * static_cast<std::int64_t>(kChannelsPerBlock);
  const std::int64_t c = blockIdx.y * static_cast<std::int64_t>(kChunksPerBlock) + threadIdx.y,
                     n = blockIdx.z;
  if (c >= p.chunks) return;
  float h[kTiledStates];
  const float* state = incoming + ((n * p.chunks + c) * p.E + e0 + lane) * kTiledStates;
#pragma unroll
  for (int s = 0; s < kTiledStates; ++s) h[s] = state[s];
  scan_chunk_staged<true, T>(p, tiles[threadIdx.y], n, lane, e0, c, h, nullptr, y);
}

// Whether the staged kernels apply, given 16 states whose rows start on 16 bytes (the caller's
// choice of kStates): whole blocks of 32 channels, and u's and delta's rows (or dt_weight's)
// on 16 bytes; in the projected form, dt_in's too, as stage_projected_deltas reads it by words
// (the caller's rows_aligned implies it today: dt_in starts the row whose B it checks).
template <typename T>
bool scan_can_stage(const ScanPointers<T>& p) {
  const bool delta_aligned =
      p.dt_in ? is_aligned16(p.dt_in) && is_aligned16(p.dt_weight) : is_aligned16(p.delta);
  return p.S == kTiledStates && p.E % kChannelsPerBlock == 0 && is_aligned16(p.u) && delta_aligned;
}

// Tokens a chunk: 128 where that still leaves 1,024 threads a multiprocessor (stage 0 of
// `base`: 1,500), else the longest of 64, 32 and 16 that leaves 512 (16 if none does); and at
// most 65535 blocks of chunks (the grid's y limit). Longer chunks halve the carry's work and
// the summaries' traffic; shorter ones fill the multiprocessors at the small stages. H200,
// base 128^3, all scans of a forward: 64 everywhere 5.92 ms, 128 everywhere 6.52 ms, 128 or
// else 64 5.56 ms. Stages 2 and 3 (E L of 1.6 and 0.4 million) took 64 then (48 blocks of
// walks at stage 3) and take 16 now: with carry_shape, the scan kernels of a float16 forward
// went from 4.45 to 3.84 ms (Nsight Compute) and the forward from 34.11 to 33.52 ms.
std::int64_t scan_chunk_length(std::int64_t N, std::int64_t E, std::int64_t L) {
  const std::int64_t multiprocessors = multiprocessor_count();
  const auto threads = [&](std::int64_t chunk) { return N * E * ((L + chunk - 1) / chunk); };
  std::int64_t chunk = 16;
  if (threads(128) >= 1024 * multiprocessors) {
    chunk = 128;
  } else {
    for (std::int64_t candidate : {64, 32}) {
      if (threads(candidate) >= 512 * multiprocessors) {
        chunk = candidate;
        break;
      }
    }
  }
  return std::max<std::int64_t>(chunk, (L + 65535 * kChunksPerBlock - 1) / (65535 * kChunksPerBlock));
}

template <int kStates, typename T>
void launch_scan(const ScanPointers<T>& p, float* chunk_dt, float* chunk_state, T* y) {
  const dim3 grid(blocks_for(p.E, kChannelsPerBlock), blocks_for(p.chunks, kChunksPerBlock),
                  static_cast<unsigned int>(p.N));
  const dim3 block(kChannelsPerBlock, kChunksPerBlock);
  const bool staged = kStates == kTiledStates && scan_can_stage(p);
  if (staged) {
    scan_staged_summary_kernel<T><<<grid, block, 0, stream()>>>(p, chunk_dt, chunk_state);
  } else {
    scan_chunk_summary_kernel<kStates, T><<<grid, block, 0, stream()>>>(p, chunk_dt, chunk_state);
  }
  check_launch("selective_scan summary");
  const dim3 carry_block = carry_shape(p.chunks);
  const dim3 carry_grid(blocks_for(p.E * p.S, carry_block.x), static_cast<unsigned int>(p.N));
  const std::size_t carry_bytes = 2 * sizeof(float) * carry_block.x * carry_block.y;
  scan_carry_kernel<<<carry_grid, carry_block, carry_bytes, stream()>>>(chunk_dt, p.A, chunk_state, p.chunks,
                                                                        p.E, p.S);
  check_launch("selective_scan carry");
  if (staged) {
    scan_staged_output_kernel<T><<<grid, block, 0, stream()>>>(p, chunk_state, y);
  } else {
    scan_output_kernel<kStates, T><<<grid, block, 0, stream()>>>(p, chunk_state, y);
  }
  check_launch("selective_scan output");
}

}  // namespace

Tensor selective_scan(const ScanInputs& in, TokenOrder order, const VolumeShape& volume) {
  check_scan_args(in, volume);
  require_cuda_float(in.u, "selective_scan", "input");
  for (const Tensor* t : {&in.delta, &in.B, &in.C, &in.projected}) {  // absent ones pass
    require_cuda_float(*t, "selective_scan", "input");
    require_same_dtype(in.u, *t, "selective_scan", "delta, B, C and projected");
  }
  for (const Tensor* t : {&in.delta_bias, &in.A, &in.D, &in.dt_weight}) {
    require_cuda_f32(*t, "selective_scan", "parameter");
  }
  for (const Tensor* t : {&in.sum, &in.gate}) {  // absent ones pass
    require_cuda_float(*t, "selective_scan", "sum or gate");
    require_same_dtype(in.u, *t, "selective_scan", "sum and gate");
  }
  const std::int64_t N = in.u.dim(0), L = in.u.dim(1), E = in.u.dim(2), S = in.A.dim(1);
  if (S > kMaxStates) throw Error("selective_scan: at most 64 states are supported on the GPU");
  const std::int64_t chunk = scan_chunk_length(N, E, L);
  const std::int64_t chunks = (L + chunk - 1) / chunk;
  Tensor chunk_dt = Tensor::empty({N, chunks, E}, DType::f32, in.u.device());
  Tensor chunk_state = Tensor::empty({N, chunks, E, S}, DType::f32, in.u.device());
  Tensor y = empty_like_device(in.u.shape(), in.u);
  with_float_type(in.u.dtype(), "selective_scan", [&](auto tag) {
    using T = decltype(tag);
    const bool projected = in.is_projected();
    const std::int64_t row_stride = projected ? in.projected.dim(2) : S;
    const T* rows = ptr_as<T>(in.projected);
    const ScanPointers<T> p{ptr_as<T>(in.u),
                            ptr_as<T>(in.delta),
                            projected ? rows + row_stride - 2 * S : ptr_as<T>(in.B),
                            projected ? rows + row_stride - S : ptr_as<T>(in.C),
                            ptr(in.delta_bias),
                            ptr(in.A),
                            ptr(in.D),
                            N,
                            L,
                            E,
                            S,
                            chunk,
                            chunks,
                            token_index(order, volume),
                            ptr_as<T>(in.sum),
                            ptr_as<T>(in.gate),
                            row_stride,
                            rows,
                            ptr(in.dt_weight),
                            projected ? static_cast<int>(in.dt_weight.dim(0)) : 0};
    // 16 states are read as 16-byte words (load_states), which rows of the projected form
    // need not start on; those take the walk with S a run-time count.
    const bool rows_aligned = (row_stride * sizeof(T)) % 16 == 0 && is_aligned16(p.B) && is_aligned16(p.C);
    if (S == 16 && rows_aligned) {
      launch_scan<16, T>(p, mutable_ptr(chunk_dt), mutable_ptr(chunk_state), mutable_ptr_as<T>(y));
    } else {
      launch_scan<0, T>(p, mutable_ptr(chunk_dt), mutable_ptr(chunk_state), mutable_ptr_as<T>(y));
    }
  });
  return y;
}

}  // namespace voxmamba::kernels::cuda
