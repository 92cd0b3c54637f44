// Linear maps (and so pointwise convs) on cuBLAS, fp32 without TF32 so that results match
// the CPU reference to fp32 rounding.
#include <cublas_v2.h>

#include <mutex>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/gemm.cuh"
#include "kernels/op_checks.h"

namespace voxmamba::kernels::cuda {
namespace {

cublasHandle_t handle() {
  static cublasHandle_t instance = nullptr;
  static std::once_flag once;
  std::call_once(once, [] {
    if (cublasCreate(&instance) != CUBLAS_STATUS_SUCCESS) throw Error("cuBLAS: cannot create a handle");
    cublasSetMathMode(instance, CUBLAS_PEDANTIC_MATH);  // no TF32: fp32 means fp32 here
  });
  return instance;
}

__global__ void broadcast_rows_kernel(const float* bias, float* y, std::int64_t rows, std::int64_t c) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < rows * c;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    y[i] = bias[i % c];
  }
}

}  // namespace

void gemm(const float* A, const float* B, float* C, std::int64_t M, std::int64_t N, std::int64_t K,
          std::int64_t lda, std::int64_t ldb, std::int64_t ldc, bool accumulate) {
  if (M == 0 || N == 0) return;
  const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  const cublasStatus_t status =
      cublasSgemm(handle(), CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(N), static_cast<int>(M), static_cast<int>(K),
                  &alpha, B, static_cast<int>(ldb), A, static_cast<int>(lda), &beta, C, static_cast<int>(ldc));
  if (status != CUBLAS_STATUS_SUCCESS) throw Error("cuBLAS: sgemm failed (status " + std::to_string(status) + ")");
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  require_cuda_f32(x, "linear", "input");
  require_cuda_f32(weight, "linear", "weight");
  Tensor y = empty_like_device(linear_output_shape(x, weight, bias), x);
  const std::int64_t in = weight.dim(0), out = weight.dim(1), rows = x.numel() / in;
  if (bias.defined()) {
    broadcast_rows_kernel<<<blocks_for(rows * out), kThreads>>>(ptr(bias), mutable_ptr(y), rows, out);
    check_launch("linear bias");
  }
  gemm(ptr(x), ptr(weight), mutable_ptr(y), rows, out, in, in, out, out, bias.defined());
  return y;
}

}  // namespace voxmamba::kernels::cuda
