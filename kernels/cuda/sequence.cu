// Sequence ops over a volume's tokens on the GPU. Orientations are applied by index
// (token_at), never by copying. The selective scan is chunked so the whole GPU works on
// one long sequence (gpu.md: one block per channel walking 262,144 tokens leaves most SMs
// idle): (1) each chunk scans from a zero state and records its total decay and end state,
// (2) a short sequential pass composes the chunks' (decay, state) pairs into each chunk's
// incoming state, (3) each chunk rescans from its incoming state and writes y.
#include <algorithm>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/op_checks.h"

namespace voxmamba::kernels::cuda {
namespace {

__global__ void permute_kernel(const float* x, float* y, std::int64_t N, std::int64_t L, std::int64_t F,
                               TokenOrder order, VolumeShape volume, bool restore) {
  const std::int64_t total = N * L * F;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t f = i % F, row = i / F, n = row / L, position = row % L;
    const std::int64_t token_row = n * L + token_at(position, order, volume);
    if (restore) {
      y[token_row * F + f] = x[i];
    } else {
      y[i] = x[token_row * F + f];
    }
  }
}

__global__ void causal_conv1d_kernel(const float* x, const float* weight, const float* bias, float* y,
                                     std::int64_t N, std::int64_t L, std::int64_t E, std::int64_t K,
                                     TokenOrder order, VolumeShape volume, bool apply_silu) {
  const std::int64_t total = N * L * E;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t e = i % E, row = i / E, n = row / L, position = row % L;
    float acc = bias ? bias[e] : 0.0f;
    for (std::int64_t j = 0; j < K; ++j) {
      const std::int64_t source = position - (K - 1) + j;
      if (source >= 0) acc += weight[j * E + e] * x[(n * L + token_at(source, order, volume)) * E + e];
    }
    if (apply_silu) acc = acc / (1.0f + expf(-acc));
    y[(n * L + token_at(position, order, volume)) * E + e] = acc;
  }
}

struct ScanPointers {
  const float *u, *delta, *delta_bias, *A, *B, *C, *D;
  std::int64_t N, L, E, S, chunk, chunks;
  TokenOrder order;
  VolumeShape volume;
};

constexpr int kMaxStates = 64;

// Walks chunk `c` of channel e of sample n from state h. Phase 1 (write_y false) returns the
// chunk's total decay in `decay`; phase 3 writes y.
template <int kStates>
__device__ void scan_chunk(const ScanPointers& p, std::int64_t n, std::int64_t e, std::int64_t c, float* h,
                           float* decay, float* y) {
  const std::int64_t S = kStates > 0 ? kStates : p.S;
  float a[kStates > 0 ? kStates : kMaxStates];
  for (std::int64_t s = 0; s < S; ++s) a[s] = p.A[e * S + s];
  const std::int64_t begin = c * p.chunk, end = min(p.L, begin + p.chunk);
  const float bias = p.delta_bias[e], skip = p.D[e];
  for (std::int64_t i = begin; i < end; ++i) {
    const std::int64_t token = n * p.L + token_at(i, p.order, p.volume);
    const float raw = p.delta[token * p.E + e] + bias;
    const float dt = raw > 20.0f ? raw : log1pf(expf(raw));
    const float x = p.u[token * p.E + e], dt_x = dt * x;
    float out = 0.0f;
#pragma unroll
    for (std::int64_t s = 0; s < S; ++s) {
      const float decay_s = expf(dt * a[s]);
      h[s] = decay_s * h[s] + dt_x * p.B[token * S + s];
      if (decay) decay[s] *= decay_s;
      out += p.C[token * S + s] * h[s];
    }
    if (y) y[token * p.E + e] = out + skip * x;
  }
}

// Threads: x over channels (neighbouring threads read neighbouring u, delta), y over chunks.
template <int kStates>
__global__ void scan_chunk_summary_kernel(ScanPointers p, float* chunk_decay, float* chunk_state) {
  const std::int64_t e = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  const std::int64_t c = blockIdx.y, n = blockIdx.z;
  if (e >= p.E) return;
  float h[kStates > 0 ? kStates : kMaxStates], decay[kStates > 0 ? kStates : kMaxStates];
  for (std::int64_t s = 0; s < p.S; ++s) h[s] = 0.0f, decay[s] = 1.0f;
  scan_chunk<kStates>(p, n, e, c, h, decay, nullptr);
  const std::int64_t base = ((n * p.chunks + c) * p.E + e) * p.S;
  for (std::int64_t s = 0; s < p.S; ++s) chunk_decay[base + s] = decay[s], chunk_state[base + s] = h[s];
}

// Composes (decay, state) pairs in order: incoming[c] = decay[c-1] * incoming[c-1] + state[c-1].
// Overwrites chunk_state with each chunk's incoming state.
__global__ void scan_carry_kernel(const float* chunk_decay, float* chunk_state, std::int64_t N, std::int64_t chunks,
                                  std::int64_t E, std::int64_t S) {
  const std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;  // (n, e, s)
  if (i >= N * E * S) return;
  const std::int64_t n = i / (E * S), es = i % (E * S);
  float carry = 0.0f;
  for (std::int64_t c = 0; c < chunks; ++c) {
    const std::int64_t at = (n * chunks + c) * E * S + es;
    const float end_state = chunk_decay[at] * carry + chunk_state[at];
    chunk_state[at] = carry;
    carry = end_state;
  }
}

template <int kStates>
__global__ void scan_output_kernel(ScanPointers p, const float* incoming, float* y) {
  const std::int64_t e = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  const std::int64_t c = blockIdx.y, n = blockIdx.z;
  if (e >= p.E) return;
  float h[kStates > 0 ? kStates : kMaxStates];
  const std::int64_t base = ((n * p.chunks + c) * p.E + e) * p.S;
  for (std::int64_t s = 0; s < p.S; ++s) h[s] = incoming[base + s];
  scan_chunk<kStates>(p, n, e, c, h, nullptr, y);
}

template <int kStates> void launch_scan(const ScanPointers& p, float* chunk_decay, float* chunk_state, float* y) {
  const dim3 grid(blocks_for(p.E, 64), static_cast<unsigned int>(p.chunks), static_cast<unsigned int>(p.N));
  scan_chunk_summary_kernel<kStates><<<grid, 64>>>(p, chunk_decay, chunk_state);
  check_launch("selective_scan summary");
  scan_carry_kernel<<<blocks_for(p.N * p.E * p.S), kThreads>>>(chunk_decay, chunk_state, p.N, p.chunks, p.E, p.S);
  check_launch("selective_scan carry");
  scan_output_kernel<kStates><<<grid, 64>>>(p, chunk_state, y);
  check_launch("selective_scan output");
}

Tensor permute(const Tensor& x, TokenOrder order, const VolumeShape& volume, bool restore, const char* op) {
  check_sequence(x, volume, op);
  require_cuda_f32(x, op, "input");
  Tensor y = empty_like_device(x.shape(), x);
  permute_kernel<<<blocks_for(x.numel()), kThreads>>>(ptr(x), mutable_ptr(y), x.dim(0), x.dim(1), x.dim(2), order,
                                                      volume, restore);
  check_launch(op);
  return y;
}

}  // namespace

Tensor reorder_tokens(const Tensor& x, TokenOrder order, const VolumeShape& volume) {
  return permute(x, order, volume, false, "reorder_tokens");
}

Tensor restore_tokens(const Tensor& x, TokenOrder order, const VolumeShape& volume) {
  return permute(x, order, volume, true, "restore_tokens");
}

Tensor causal_conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias, TokenOrder order,
                     const VolumeShape& volume, bool apply_silu) {
  check_causal_conv1d_args(x, weight, bias, volume);
  require_cuda_f32(x, "causal_conv1d", "input");
  Tensor y = empty_like_device(x.shape(), x);
  causal_conv1d_kernel<<<blocks_for(x.numel()), kThreads>>>(ptr(x), ptr(weight), ptr(bias), mutable_ptr(y), x.dim(0),
                                                            x.dim(1), x.dim(2), weight.dim(0), order, volume,
                                                            apply_silu);
  check_launch("causal_conv1d");
  return y;
}

Tensor selective_scan(const ScanInputs& in, TokenOrder order, const VolumeShape& volume) {
  check_scan_args(in, volume);
  for (const Tensor* t : {&in.u, &in.delta, &in.delta_bias, &in.A, &in.B, &in.C, &in.D}) {
    require_cuda_f32(*t, "selective_scan", "input");
  }
  ScanPointers p{ptr(in.u), ptr(in.delta), ptr(in.delta_bias), ptr(in.A), ptr(in.B), ptr(in.C), ptr(in.D),
                 in.u.dim(0), in.u.dim(1), in.u.dim(2), in.A.dim(1), 0, 0, order, volume};
  if (p.S > kMaxStates) throw Error("selective_scan: at most 64 states are supported on the GPU");
  // Aim for ~64 tokens a chunk, and at most 65535 chunks (the grid's y limit).
  p.chunk = std::max<std::int64_t>(64, (p.L + 65534) / 65535);
  p.chunks = (p.L + p.chunk - 1) / p.chunk;
  Tensor chunk_decay = Tensor::empty({p.N, p.chunks, p.E, p.S}, DType::f32, in.u.device());
  Tensor chunk_state = Tensor::empty({p.N, p.chunks, p.E, p.S}, DType::f32, in.u.device());
  Tensor y = empty_like_device(in.u.shape(), in.u);
  if (p.S == 16) {
    launch_scan<16>(p, mutable_ptr(chunk_decay), mutable_ptr(chunk_state), mutable_ptr(y));
  } else {
    launch_scan<0>(p, mutable_ptr(chunk_decay), mutable_ptr(chunk_state), mutable_ptr(y));
  }
  return y;
}

}  // namespace voxmamba::kernels::cuda
