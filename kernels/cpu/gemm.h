#pragma once
// Row-major single-precision GEMM, C[M,N] (+)= A[M,K] * B[K,N], on OpenBLAS when it loads
// (openblas.h: single-threaded, because the callers split rows over the thread pool) and on a
// plain cache-blocked loop otherwise.
#include <cstdint>
#include <string>

namespace voxmamba::kernels::cpu {

// One thread. `accumulate` adds to C instead of overwriting it.
void gemm(const float* A, const float* B, float* C, std::int64_t M, std::int64_t N, std::int64_t K,
          std::int64_t lda, std::int64_t ldb, std::int64_t ldc, bool accumulate);

// Splits the M rows over the thread pool.
void parallel_gemm(const float* A, const float* B, float* C, std::int64_t M, std::int64_t N, std::int64_t K,
                   std::int64_t lda, std::int64_t ldb, std::int64_t ldc, bool accumulate);

// "openblas " and the kernels it runs ("openblas SkylakeX"), or "builtin", for benchmark JSON.
std::string gemm_backend_name();

}  // namespace voxmamba::kernels::cpu
