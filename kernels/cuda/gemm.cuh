#pragma once
// Row-major single-precision GEMM on cuBLAS: C[M,N] (+)= A[M,K] B[K,N], with leading
// dimensions in elements. cuBLAS is column-major, so this computes C^T = B^T A^T.
#include <cstdint>

namespace voxmamba::kernels::cuda {

void gemm(const float* A, const float* B, float* C, std::int64_t M, std::int64_t N, std::int64_t K,
          std::int64_t lda, std::int64_t ldb, std::int64_t ldc, bool accumulate);

}  // namespace voxmamba::kernels::cuda
