#pragma once
// Row-major single-precision GEMM, C[M,N] (+)= A[M,K] * B[K,N], on BLAS when the build found
// one (OpenBLAS, kept single-threaded because the callers split rows over the thread pool)
// and on a plain cache-blocked loop otherwise.
#include <cstdint>

namespace voxmamba::kernels::cpu {

// One thread. `accumulate` adds to C instead of overwriting it.
void gemm(const float* A, const float* B, float* C, std::int64_t M, std::int64_t N, std::int64_t K,
          std::int64_t lda, std::int64_t ldb, std::int64_t ldc, bool accumulate);

// Splits the M rows over the thread pool.
void parallel_gemm(const float* A, const float* B, float* C, std::int64_t M, std::int64_t N, std::int64_t K,
                   std::int64_t lda, std::int64_t ldb, std::int64_t ldc, bool accumulate);

const char* gemm_backend_name();  // "openblas" or "builtin", for benchmark JSON

}  // namespace voxmamba::kernels::cpu
