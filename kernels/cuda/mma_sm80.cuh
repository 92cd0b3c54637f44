#pragma once
// The sm_80 warp-level matrix instructions our tensor-core conv kernels share: the m16n8k16
// product, ldmatrix and cp.async. A build for an older architecture compiles their bodies
// away; built_with_sm80 tells the host whether a kernel as loaded for this GPU holds them.
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "kernels/cuda/cuda_common.cuh"

namespace voxmamba::kernels::cuda {

// c += a * b on 16-bit inputs (T: f16 or bf16) with float accumulators; a is the A fragment of
// a 16 x 16 row-major tile, b0 and b1 the B fragment of a 16 x 8 column-major one.
template <typename T>
__device__ __forceinline__ void mma_16816(float (&c)[4], const std::uint32_t (&a)[4], std::uint32_t b0,
                                          std::uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  if constexpr (std::is_same_v<T, f16>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
#endif
}

// Four 8 x 8 matrices of 16-bit values from shared memory: lane l gives the address of row
// l % 8 of matrix l / 8 (16 contiguous bytes), and receives in r[m] its pair of matrix m.
__device__ __forceinline__ void ldmatrix_x4(std::uint32_t (&r)[4], std::uint32_t shared_address) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(shared_address));
#endif
}

__device__ __forceinline__ std::uint32_t shared_address(const void* p) {
  return static_cast<std::uint32_t>(__cvta_generic_to_shared(p));
}

// 16 bytes from global to shared memory without passing through registers; with `inside`
// false nothing is read and the 16 bytes are zeros (the source must still be a valid address).
__device__ __forceinline__ void cp_async_16_or_zero(std::uint32_t shared_target, const void* source,
                                                    bool inside) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(shared_target), "l"(source),
               "r"(inside ? 16 : 0));
#endif
}

// Waits for every cp.async this thread issued (the block still needs a barrier to see them all).
__device__ __forceinline__ void cp_async_wait_all() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_all;" ::: "memory");
#endif
}

__device__ __forceinline__ std::uint32_t pack_16bit(std::uint16_t low, std::uint16_t high) {
  return static_cast<std::uint32_t>(low) | (static_cast<std::uint32_t>(high) << 16);
}

// Whether `kernel` as loaded for this GPU was compiled for sm_80 or later (a build for an
// older architecture, run through its PTX, has the matrix instructions compiled away).
template <typename Kernel>
bool built_with_sm80(Kernel kernel) {
  cudaFuncAttributes attributes{};
  return cudaFuncGetAttributes(&attributes, kernel) == cudaSuccess && attributes.binaryVersion >= 80 &&
         attributes.ptxVersion >= 80;
}

}  // namespace voxmamba::kernels::cuda
