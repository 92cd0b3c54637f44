#pragma once
// Shared by the CUDA kernels: error checks that throw voxmamba::Error, launch geometry,
// argument checks, and the three activation types. Activations (and the weights of GEMM-shaped
// ops) are float32, bfloat16 or float16; kernels read them into float, compute and accumulate in
// float, and round once when they store. Biases, norm affines, depthwise weights and scan
// parameters stay float32 (ops.h).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/tensor.h"

namespace voxmamba::kernels::cuda {

using bf16 = __nv_bfloat16;
using f16 = __half;

void check_cuda(cudaError_t status, const char* what);
// After a launch: reports a bad configuration at once (execution errors surface at the
// next synchronising call).
inline void check_launch(const char* kernel) { check_cuda(cudaGetLastError(), kernel); }

// On the GPU and float32 (parameters), or on the GPU and float32, bfloat16 or float16 (activations).
void require_cuda_f32(const Tensor& x, const char* op, const char* what);
void require_cuda_float(const Tensor& x, const char* op, const char* what);
// `b` (if defined) has `a`'s element type: GEMM weights follow the activations.
void require_same_dtype(const Tensor& a, const Tensor& b, const char* op, const char* what);

// The stream that all GPU work on the current device is queued on, in order: kernels, cuBLAS,
// cuDNN and copies. One ordered stream lets the caching allocator hand a freed block to the
// next tensor without events; unlike the legacy default stream it can be recorded into a CUDA
// graph (backend.h). Non-blocking, so that no other work in the process joins it implicitly.
cudaStream_t stream();

// Multiprocessors of the current device, for kernels that size their work to fill it.
int multiprocessor_count();
// The shared memory a block of the current device may opt in to (cudaFuncSetAttribute).
int shared_memory_per_block_optin();

// for (i over [0, n)) in a grid-stride loop, 64-bit: every thread of the grid takes every
// gridDim * blockDim-th index, so the grid may be smaller than the work.
#define VOXMAMBA_GRID_STRIDE(i, n)                                                             \
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < (n); \
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)

// The blocks of `kernel` (of `threads` threads and `dynamic_bytes` of dynamic shared memory)
// that one multiprocessor of the current device holds, at least 1. Kept per device, kernel and
// launch shape: the occupancy query reads the kernel's attributes each time, and the norms, the
// deformable conv and the narrow-input conv ask before each launch of an eager forward.
std::int64_t blocks_per_multiprocessor(const void* kernel, int threads, std::size_t dynamic_bytes);

// The blocks of `kernel` that the whole GPU holds at once: a grid of a multiple of this runs
// in whole waves, with no last wave that leaves most multiprocessors idle.
template <typename Kernel>
std::int64_t resident_blocks(Kernel kernel, int threads, std::size_t dynamic_bytes = 0) {
  return blocks_per_multiprocessor(reinterpret_cast<const void*>(kernel), threads, dynamic_bytes) *
         multiprocessor_count();
}

constexpr int kThreads = 256;
inline unsigned int blocks_for(std::int64_t work, int threads = kThreads) {
  const std::int64_t blocks = (work + threads - 1) / threads;
  return static_cast<unsigned int>(blocks < 1 ? 1 : (blocks > 2147483647 ? 2147483647 : blocks));
}

inline const float* ptr(const Tensor& t) { return t.defined() ? static_cast<const float*>(t.raw_data()) : nullptr; }
inline float* mutable_ptr(Tensor& t) { return static_cast<float*>(t.raw_data()); }
template <typename T> const T* ptr_as(const Tensor& t) {
  return t.defined() ? static_cast<const T*>(t.raw_data()) : nullptr;
}
template <typename T> T* mutable_ptr_as(Tensor& t) { return static_cast<T*>(t.raw_data()); }

// A tensor on the same GPU as `like`, by default of its element type.
inline Tensor empty_like_device(const Shape& shape, const Tensor& like) {
  return Tensor::empty(shape, like.dtype(), like.device());
}
inline Tensor empty_like_device(const Shape& shape, const Tensor& like, DType dtype) {
  return Tensor::empty(shape, dtype, like.device());
}

// Calls f(float{}), f(bf16{}) or f(f16{}) for an activation type, so one templated kernel
// serves all three.
template <typename F> void with_float_type(DType type, const char* op, F&& f) {
  if (type == DType::f32) {
    f(float{});
  } else if (type == DType::bf16) {
    f(bf16{});
  } else if (type == DType::f16) {
    f(f16{});
  } else {
    throw Error(std::string(op) + ": activations must be float32, bfloat16 or float16");
  }
}

// The 16-bit activation types: stored rounded, computed in float, tensor-core GEMMs.
template <typename T> constexpr bool is_half_width = sizeof(T) == 2;

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(bf16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_f32(f16 v) { return __half2float(v); }
template <typename T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ bf16 from_f32<bf16>(float v) { return __float2bfloat16_rn(v); }
template <> __device__ __forceinline__ f16 from_f32<f16>(float v) { return __float2half_rn(v); }

// SiLU, x * sigmoid(x), for the elementwise op, the causal conv1d and the scan's gate: one
// definition so that the three agree to the bit. expf, not __expf: the gate multiplies the
// scan's output, and the fast intrinsic's error grows with |x|.
__device__ __forceinline__ float silu_f32(float v) { return v / (1.0f + expf(-v)); }

// V consecutive channels as floats. Vectors of 16 bytes load in one instruction.
template <typename T, int V> struct Vec {
  float v[V];
  __device__ __forceinline__ void load(const T* p) {
    if constexpr ((sizeof(T) * V) % 16 == 0) {
      constexpr int kPerLoad = 16 / sizeof(T);
#pragma unroll
      for (int q = 0; q < V / kPerLoad; ++q) {
        const uint4 raw = reinterpret_cast<const uint4*>(p)[q];
        const T* parts = reinterpret_cast<const T*>(&raw);
#pragma unroll
        for (int k = 0; k < kPerLoad; ++k) v[q * kPerLoad + k] = to_f32(parts[k]);
      }
    } else {
#pragma unroll
      for (int k = 0; k < V; ++k) v[k] = to_f32(p[k]);
    }
  }
  __device__ __forceinline__ void store(T* p) const {
    if constexpr ((sizeof(T) * V) % 16 == 0) {
      constexpr int kPerLoad = 16 / sizeof(T);
#pragma unroll
      for (int q = 0; q < V / kPerLoad; ++q) {
        uint4 raw;
        T* parts = reinterpret_cast<T*>(&raw);
#pragma unroll
        for (int k = 0; k < kPerLoad; ++k) parts[k] = from_f32<T>(v[q * kPerLoad + k]);
        reinterpret_cast<uint4*>(p)[q] = raw;
      }
    } else {
#pragma unroll
      for (int k = 0; k < V; ++k) p[k] = from_f32<T>(v[k]);
    }
  }
};

// Whether p sits on a multiple of `bytes` (null counts as aligned), so that vector accesses
// may use it. Allocations are aligned; views into them need not be.
inline bool is_aligned(const void* p, std::int64_t bytes) {
  return reinterpret_cast<std::uintptr_t>(p) % static_cast<std::uintptr_t>(bytes) == 0;
}
inline bool is_aligned16(const void* p) { return is_aligned(p, 16); }

// The widest channel vector that divides C: 16 bytes when possible, else single channels.
template <typename T> int vector_width(std::int64_t channels) {
  constexpr int wide = 16 / static_cast<int>(sizeof(T));
  return channels % wide == 0 ? wide : 1;
}

// cudaDataType of an activation type, for cuBLAS and cuDNN descriptors.
inline cudaDataType_t cuda_data_type(DType type) {
  return type == DType::bf16 ? CUDA_R_16BF : (type == DType::f16 ? CUDA_R_16F : CUDA_R_32F);
}

}  // namespace voxmamba::kernels::cuda
