// cuBLASLt with the bias epilogue, or none, and beta = 1 onto a residual where one is given
// (gemm_bias_lt.cuh). Row-major C = A B is the column-major C^T (N x M, leading dimension N)
// = B^T (N x K) A^T (K x M), with no transposes: the bias runs along D's rows, one value per
// output channel. One plan (descriptors and the heuristic's first algorithm) per shape, types
// and pointer alignments, made once: the choice is the same every run, so the bytes are.
// Plans asked for `timed` are timed instead (choose_by_time).
#include <cublasLt.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>

#include "core/tensor.h"
#include "kernels/backend.h"
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
                       std::uint32_t, std::uint32_t, bool, bool, bool>;

// Candidates a timed plan tries: the heuristic's first eight.
constexpr int kTimedCandidates = 8;

// Milliseconds of one run of `algorithm`, the least of three after one to warm up
// (kernels::elapsed_ms: CUDA events on the stream, the host waits); infinity if it fails.
float time_algorithm(const Plan& plan, const cublasLtMatmulAlgo_t& algorithm, const void* A, const void* B,
                     void* C, void* workspace, std::size_t workspace_bytes, const Device& device) {
  const float alpha = 1.0f, beta = 0.0f;
  const auto run = [&] {
    return cublasLtMatmul(handle(), plan.operation, &alpha, B, plan.a, A, plan.b, &beta, C, plan.c, C, plan.c,
                          &algorithm, workspace, workspace_bytes, stream()) == CUBLAS_STATUS_SUCCESS;
  };
  if (!run()) return std::numeric_limits<float>::infinity();
  double best = std::numeric_limits<double>::infinity();
  for (int i = 0; i < 3; ++i) {
    bool ok = true;
    const double ms = elapsed_ms(device, [&] { ok = run(); });
    if (!ok) return std::numeric_limits<float>::infinity();
    best = std::min(best, ms);
  }
  return static_cast<float>(best);
}

__global__ void count_differences_kernel(const std::uint16_t* a, const std::uint16_t* b, std::int64_t n,
                                         unsigned int* count) {
  VOXMAMBA_GRID_STRIDE(i, n) {
    if (a[i] != b[i]) atomicAdd(count, 1u);
  }
}

// Whether the `bytes` (even) at a and b on the GPU are the same, bit for bit (the host waits).
bool same_bytes(const void* a, const void* b, std::size_t bytes, const Device& device) {
  Tensor count = Tensor::zeros({1}, DType::i32, device);
  const std::int64_t n = static_cast<std::int64_t>(bytes / 2);
  count_differences_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(
      static_cast<const std::uint16_t*>(a), static_cast<const std::uint16_t*>(b), n,
      static_cast<unsigned int*>(count.raw_data()));
  check_launch("cuBLASLt timing: compare");
  unsigned int differences = 1;
  check_cuda(
      cudaMemcpyAsync(&differences, count.raw_data(), sizeof(differences), cudaMemcpyDeviceToHost, stream()),
      "cuBLASLt timing: copy");
  check_cuda(cudaStreamSynchronize(stream()), "cuBLASLt timing: wait");
  return differences == 0;
}

// The plan's algorithm, timed among the heuristic's candidates on the call's own buffers (C is
// written, `c_bytes` of it, and the call writes it again): the heuristic's first stays unless
// another takes at most 95% of its time, so that near ties (noise) do not move the choice, and
// gives the same bytes as the first on these inputs, so that `forward` still gives the same
// bytes every run whichever algorithm a run picks (cudnn_conv.cu's rule). Under Nsight Compute,
// which replays each kernel, the timings (and so perhaps the choice) differ from a plain run's:
// bf16's 48 -> 1032 map at 64^3 chose a candidate of 0.226 ms (the first: 0.392) in a plain H200
// run, where ncu's kernel table had shown 368 us.
void choose_by_time(Plan& plan, const cublasLtMatmulHeuristicResult_t* results, int count, const void* A,
                    const void* B, void* C, std::size_t c_bytes, const Device& device) {
  std::size_t workspace_bytes = 0;
  for (int i = 0; i < count; ++i) workspace_bytes = std::max(workspace_bytes, results[i].workspaceSize);
  Tensor workspace;
  if (workspace_bytes > 0) {
    workspace = Tensor::empty({static_cast<std::int64_t>((workspace_bytes + 3) / 4)}, DType::f32, device);
  }
  const float first =
      time_algorithm(plan, results[0].algo, A, B, C, workspace.raw_data(), workspace_bytes, device);
  if (!std::isfinite(first)) return;  // nothing to compare with: the call reports the failure
  Tensor first_result = Tensor::empty({static_cast<std::int64_t>(c_bytes / 2)}, DType::f16, device);
  check_cuda(cudaMemcpyAsync(first_result.raw_data(), C, c_bytes, cudaMemcpyDeviceToDevice, stream()),
             "cuBLASLt timing: copy");
  float best = first;
  for (int i = 1; i < count; ++i) {
    const float ms =
        time_algorithm(plan, results[i].algo, A, B, C, workspace.raw_data(), workspace_bytes, device);
    if (ms <= 0.95f * first && ms < best && same_bytes(C, first_result.raw_data(), c_bytes, device)) {
      best = ms;
      plan.algorithm = results[i].algo;
      plan.workspace = results[i].workspaceSize;
    }
  }
}

// `timed_call` holds the call's buffers where the plan is to be timed (not while a CUDA graph
// records: the plan then keeps the heuristic's first).
struct TimedCall {
  const void *A, *B;
  void* C;
  std::size_t c_bytes;
  const Device* device;
};

std::unique_ptr<Plan> make_plan(DType type, DType c_type, std::int64_t M, std::int64_t N, std::int64_t K,
                                const std::uint32_t (&alignment)[4], bool with_bias,
                                const TimedCall* timed_call) {
  auto plan = std::make_unique<Plan>();
  const cudaDataType_t data = cuda_data_type(type), out = cuda_data_type(c_type);
  if (cublasLtMatmulDescCreate(&plan->operation, CUBLAS_COMPUTE_32F, CUDA_R_32F) != CUBLAS_STATUS_SUCCESS)
    return plan;
  const cublasLtEpilogue_t epilogue = with_bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
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
  cublasLtMatmulHeuristicResult_t results[kTimedCandidates]{};
  int returned = 0;
  const cublasStatus_t status =
      cublasLtMatmulAlgoGetHeuristic(handle(), plan->operation, plan->a, plan->b, plan->c, plan->c,
                                     preference, timed_call ? kTimedCandidates : 1, results, &returned);
  cublasLtMatmulPreferenceDestroy(preference);
  if (status != CUBLAS_STATUS_SUCCESS || returned == 0 || results[0].state != CUBLAS_STATUS_SUCCESS)
    return plan;
  plan->algorithm = results[0].algo;
  plan->workspace = results[0].workspaceSize;
  plan->supported = true;
  if (timed_call && returned > 1) {
    choose_by_time(*plan, results, returned, timed_call->A, timed_call->B, timed_call->C, timed_call->c_bytes,
                   *timed_call->device);
  }
  return plan;
}

}  // namespace

bool gemm_bias_lt(DType type, const void* A, const void* B, const void* bias, void* C, std::int64_t M,
                  std::int64_t N, std::int64_t K, DType c_type, const Device& device, bool timed,
                  const void* residual) {
  if (type == DType::f32 || M == 0 || N == 0 || K == 0) return false;
  static std::mutex mutex;
  static std::map<Key, std::unique_ptr<Plan>> plans;
  // Lt's A, B, C and D are our B, A, the residual (C itself without one) and C. The plan does
  // not depend on the bias pointer, which is set on it for each call.
  const void* addend = residual ? residual : C;
  const std::uint32_t alignment[4] = {alignment_of(B), alignment_of(A), alignment_of(addend),
                                      alignment_of(C)};
  const bool with_bias = bias != nullptr;
  timed = timed && residual == nullptr;  // the timing runs write C from the product alone
  const Key key{static_cast<int>(type),
                static_cast<int>(c_type),
                M,
                N,
                K,
                alignment[0],
                alignment[1],
                alignment[2],
                alignment[3],
                with_bias,
                residual != nullptr,
                timed};
  // Held to the launch: the bias pointer is set on the plan's shared descriptor.
  std::lock_guard<std::mutex> lock(mutex);
  auto found = plans.find(key);
  if (found == plans.end()) {
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    check_cuda(cudaStreamIsCapturing(stream(), &capture), "cuBLASLt: capture status");
    const TimedCall call{A, B, C, static_cast<std::size_t>(M * N) * dtype_size(c_type), &device};
    const bool time_it = timed && capture == cudaStreamCaptureStatusNone;
    found =
        plans.emplace(key, make_plan(type, c_type, M, N, K, alignment, with_bias, time_it ? &call : nullptr))
            .first;
  }
  const Plan* plan = found->second.get();
  if (!plan->supported) return false;
  if (with_bias && cublasLtMatmulDescSetAttribute(plan->operation, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                                  sizeof(bias)) != CUBLAS_STATUS_SUCCESS) {
    return false;
  }
  Tensor workspace;
  if (plan->workspace > 0) {
    workspace = Tensor::empty({static_cast<std::int64_t>((plan->workspace + 3) / 4)}, DType::f32, device);
  }
  const float alpha = 1.0f, beta = residual ? 1.0f : 0.0f;
  const cublasStatus_t status =
      cublasLtMatmul(handle(), plan->operation, &alpha, B, plan->a, A, plan->b, &beta, addend, plan->c, C,
                     plan->c, &plan->algorithm, workspace.raw_data(), plan->workspace, stream());
  if (status != CUBLAS_STATUS_SUCCESS) {
    throw Error("cuBLASLt: matmul with bias failed (status " + std::to_string(status) + ")");
  }
  return true;
}

}  // namespace voxmamba::kernels::cuda
