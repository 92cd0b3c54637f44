// cuBLASLt with the bias epilogue (gemm_bias_lt.cuh). Row-major C = A B is the column-major
// C^T (N x M, leading dimension N) = B^T (N x K) A^T (K x M), with no transposes: the bias runs
// along D's rows, one value per output channel. One plan (descriptors and the heuristic's
// first algorithm) per shape, types and pointer alignments, made once: the choice is the same
// every run, so the bytes are.
#include <cublasLt.h>

#include <map>
#include <memory>
#include <mutex>
#include <tuple>

#include "core/tensor.h"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/gemm_bias_lt.cuh"

namespace voxmamba::kernels::cuda {
namespace {

constexpr std::size_t kWorkspaceBytes = std::size_t(32) << 20;

cublasLtHandle_t handle() {
  static cublasLtHandle_t instance = nullptr;
  static std::once_flag once;
  std::call_once(once, [] {
    if (cublasLtCreate(&instance) != CUBLAS_STATUS_SUCCESS) throw Error("cuBLASLt: cannot create a handle");
  });
  return instance;
}

// The largest power of two up to 256 that divides the address: cuBLASLt's heuristic assumes
// 256-byte alignment unless told otherwise.
std::uint32_t alignment_of(const void* p) {
  std::uint32_t bytes = 256;
  while (bytes > 1 && reinterpret_cast<std::uintptr_t>(p) % bytes != 0) bytes /= 2;
  return bytes;
}

struct Plan {
  cublasLtMatmulDesc_t operation = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algorithm{};
  std::size_t workspace = 0;
  bool supported = false;
  ~Plan() {
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (operation) cublasLtMatmulDescDestroy(operation);
  }
};

using Key = std::tuple<int, int, std::int64_t, std::int64_t, std::int64_t, std::uint32_t, std::uint32_t,
                       std::uint32_t>;

std::unique_ptr<Plan> make_plan(DType type, DType c_type, std::int64_t M, std::int64_t N, std::int64_t K,
                                const std::uint32_t (&alignment)[4]) {
  auto plan = std::make_unique<Plan>();
  const cudaDataType_t data = cuda_data_type(type), out = cuda_data_type(c_type);
  if (cublasLtMatmulDescCreate(&plan->operation, CUBLAS_COMPUTE_32F, CUDA_R_32F) != CUBLAS_STATUS_SUCCESS)
    return plan;
  const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
  cublasLtMatmulDescSetAttribute(plan->operation, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue));
  // Lt's A is our B (N x K), its B our A (K x M), its C and D our C (N x M).
  if (cublasLtMatrixLayoutCreate(&plan->a, data, N, K, N) != CUBLAS_STATUS_SUCCESS ||
      cublasLtMatrixLayoutCreate(&plan->b, data, K, M, K) != CUBLAS_STATUS_SUCCESS ||
      cublasLtMatrixLayoutCreate(&plan->c, out, N, M, N) != CUBLAS_STATUS_SUCCESS) {
    return plan;
  }
  cublasLtMatmulPreference_t preference = nullptr;
  if (cublasLtMatmulPreferenceCreate(&preference) != CUBLAS_STATUS_SUCCESS) return plan;
  cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &kWorkspaceBytes,
                                       sizeof(kWorkspaceBytes));
  const cublasLtMatmulPreferenceAttributes_t alignments[4] = {
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
  for (int i = 0; i < 4; ++i) {
    cublasLtMatmulPreferenceSetAttribute(preference, alignments[i], &alignment[i], sizeof(alignment[i]));
  }
  cublasLtMatmulHeuristicResult_t result{};
  int returned = 0;
  const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(
      handle(), plan->operation, plan->a, plan->b, plan->c, plan->c, preference, 1, &result, &returned);
  cublasLtMatmulPreferenceDestroy(preference);
  if (status == CUBLAS_STATUS_SUCCESS && returned > 0 && result.state == CUBLAS_STATUS_SUCCESS) {
    plan->algorithm = result.algo;
    plan->workspace = result.workspaceSize;
    plan->supported = true;
  }
  return plan;
}

}  // namespace

bool gemm_bias_lt(DType type, const void* A, const void* B, const void* bias, void* C, std::int64_t M,
                  std::int64_t N, std::int64_t K, DType c_type, const Device& device) {
  if (type == DType::f32 || M == 0 || N == 0 || K == 0) return false;
  static std::mutex mutex;
  static std::map<Key, std::unique_ptr<Plan>> plans;
  // Lt's A, B and C/D are our B, A and C. The plan does not depend on the bias pointer, which
  // is set on it for each call.
  const std::uint32_t alignment[4] = {alignment_of(B), alignment_of(A), alignment_of(C), alignment_of(C)};
  const Key key{
      static_cast<int>(type), static_cast<int>(c_type), M, N, K, alignment[0], alignment[1], alignment[2]};
  // Held to the launch: the bias pointer is set on the plan's shared descriptor.
  std::lock_guard<std::mutex> lock(mutex);
  auto found = plans.find(key);
  if (found == plans.end()) found = plans.emplace(key, make_plan(type, c_type, M, N, K, alignment)).first;
  const Plan* plan = found->second.get();
  if (!plan->supported) return false;
  if (cublasLtMatmulDescSetAttribute(plan->operation, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                     sizeof(bias)) != CUBLAS_STATUS_SUCCESS) {
    return false;
  }
  Tensor workspace;
  if (plan->workspace > 0) {
    workspace = Tensor::empty({static_cast<std::int64_t>((plan->workspace + 3) / 4)}, DType::f32, device);
  }
  const float alpha = 1.0f, beta = 0.0f;
  const cublasStatus_t status =
      cublasLtMatmul(handle(), plan->operation, &alpha, B, plan->a, A, plan->b, &beta, C, plan->c, C, plan->c,
                     &plan->algorithm, workspace.raw_data(), plan->workspace, stream());
  if (status != CUBLAS_STATUS_SUCCESS) {
    throw Error("cuBLASLt: matmul with bias failed (status " + std::to_string(status) + ")");
  }
  return true;
}

}  // namespace voxmamba::kernels::cuda
