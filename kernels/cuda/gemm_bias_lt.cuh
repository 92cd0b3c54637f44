#pragma once
// Row-major C[M,N] = A[M,K] B[K,N] + bias[N] (+ residual[M,N]) as one cuBLASLt matmul whose
// epilogue adds the bias, instead of a bias broadcast into C and a GEMM that reads it back
// (beta = 1); or the product alone, where cuBLASLt's choice can be timed.
#include <cstdint>

#include "core/device.h"
#include "core/dtype.h"

namespace voxmamba::kernels::cuda {

// A and B of `type` (bfloat16 or float16; tensor cores, float accumulation), C of `c_type`
// (`type` or float32), the bias of `c_type` (cuBLASLt's bias has the output's type), or no
// bias (null). Returns false, having done nothing, where cuBLASLt offers no algorithm for the
// shape and the pointers' alignment; the caller then takes the broadcast and the GEMM.
// The workspace comes from `device`'s allocator.
//
// `timed`: the first call of a shape times the heuristic's first eight algorithms on its own
// buffers, the host waiting (not while a CUDA graph records), and keeps the fastest where it
// takes at most 95% of the first's time and gives the first's bytes on those buffers; untimed
// plans take the heuristic's first, the same choice every run.
// `residual` (M x N of `c_type`, or null): added to the result (beta = 1, read from there, C
// written), so that a skip connection needs no pass of its own; such calls are not timed.
bool gemm_bias_lt(DType type, const void* A, const void* B, const void* bias, void* C, std::int64_t M,
                  std::int64_t N, std::int64_t K, DType c_type, const Device& device, bool timed = false,
                  const void* residual = nullptr);

}  // namespace voxmamba::kernels::cuda
