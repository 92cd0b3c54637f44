#include "kernels/cpu/gemm.h"

#include <algorithm>
#include <string>

#include "core/thread_pool.h"
#include "kernels/cpu/openblas.h"

namespace voxmamba::kernels::cpu {

namespace {
// Blocked over K so a panel of B stays in cache; the innermost loop runs over contiguous
// columns of B and C and vectorises.
void builtin_gemm(const float* A, const float* B, float* C, std::int64_t M, std::int64_t N, std::int64_t K,
                  std::int64_t lda, std::int64_t ldb, std::int64_t ldc, bool accumulate) {
  constexpr std::int64_t kBlockK = 128;
  if (!accumulate) {
    for (std::int64_t m = 0; m < M; ++m) std::fill(C + m * ldc, C + m * ldc + N, 0.0f);
  }
  for (std::int64_t k0 = 0; k0 < K; k0 += kBlockK) {
    const std::int64_t k1 = std::min(K, k0 + kBlockK);
    for (std::int64_t m = 0; m < M; ++m) {
      float* c = C + m * ldc;
      for (std::int64_t k = k0; k < k1; ++k) {
        const float a = A[m * lda + k];
        const float* b = B + k * ldb;
        for (std::int64_t n = 0; n < N; ++n) c[n] += a * b[n];
      }
    }
  }
}
}  // namespace

void gemm(const float* A, const float* B, float* C, std::int64_t M, std::int64_t N, std::int64_t K,
          std::int64_t lda, std::int64_t ldb, std::int64_t ldc, bool accumulate) {
  if (M == 0 || N == 0) return;
  if (const OpenBlas* blas = openblas()) {
    blas->sgemm(kCblasRowMajor, kCblasNoTrans, kCblasNoTrans, static_cast<int>(M), static_cast<int>(N),
                static_cast<int>(K), 1.0f, A, static_cast<int>(lda), B, static_cast<int>(ldb),
                accumulate ? 1.0f : 0.0f, C, static_cast<int>(ldc));
  } else {
    builtin_gemm(A, B, C, M, N, K, lda, ldb, ldc, accumulate);
  }
}

std::string gemm_backend_name() {
  const OpenBlas* blas = openblas();
  return blas ? "openblas " + blas->core : "builtin";
}

void parallel_gemm(const float* A, const float* B, float* C, std::int64_t M, std::int64_t N, std::int64_t K,
                   std::int64_t lda, std::int64_t ldb, std::int64_t ldc, bool accumulate) {
  // Row blocks depend on the matrix shape only, never on the thread count: BLAS may sum a
  // small block in another order than a large one, and the output must be bit-identical
  // whatever the number of threads. A block is ~1 MFLOP, at least 16 rows.
  const std::int64_t block = std::max<std::int64_t>(16, 500000 / std::max<std::int64_t>(1, N * K));
  const std::int64_t blocks = (M + block - 1) / block;
  parallel_for(blocks, 1, [&](std::int64_t first, std::int64_t last) {
    for (std::int64_t b = first; b < last; ++b) {
      const std::int64_t row = b * block, rows = std::min(block, M - row);
      gemm(A + row * lda, B, C + row * ldc, rows, N, K, lda, ldb, ldc, accumulate);
    }
  });
}

}  // namespace voxmamba::kernels::cpu
