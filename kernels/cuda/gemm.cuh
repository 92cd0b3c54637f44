#pragma once
// Row-major GEMM on cuBLAS: C[M,N] (+)= A[M,K] B[K,N], leading dimensions in elements, A and
// B of `type` (float32: pedantic fp32, no TF32; bfloat16 or float16: tensor cores, fp32
// accumulation), C of `c_type` (by default `type`; 16-bit products may be written in float32). cuBLAS is
// column-major, so this computes C^T = B^T A^T.
#include <cstdint>
#include <optional>

#include "core/dtype.h"

namespace voxmamba::kernels::cuda {

void gemm(DType type, const void* A, const void* B, void* C, std::int64_t M, std::int64_t N, std::int64_t K,
          std::int64_t lda, std::int64_t ldb, std::int64_t ldc, bool accumulate,
          std::optional<DType> c_type = std::nullopt);

// y[r, c] = bias[c] for rows r < rows (float32 bias, y of `type`).
void fill_rows_with_bias(DType type, const float* bias, void* y, std::int64_t rows, std::int64_t c);

}  // namespace voxmamba::kernels::cuda
