// Linear maps (and so pointwise convs) on cuBLAS: float32 in pedantic fp32 (no TF32) so that
// results match the CPU reference to fp32 rounding; bfloat16 and float16 on tensor cores
// with fp32 accumulation. Measured and dropped (H200, base 128^3, same run): a kernel of our
// own for the small shapes (K 48 or 96 into N 8-96: mma.sync m16n8k16, weights in shared
// memory, bias in the accumulators, each output written once) made the forward slower, fp16
// 41.24 -> 41.98 ms and bf16 46.08 -> 46.56 ms, and so did an earlier thread-per-output
// kernel for the narrow maps (552af5e). Maps with at most 4 outputs or 4 inputs have their
// own kernels (narrow_linear.cuh). Also measured and dropped: a kernel for the offset heads
// (48 or 96 inputs into 1032 outputs; mma.sync, a block's 120 columns of weights kept in
// shared memory, tiles of 64 rows staged so that each row leaves in 16-byte stores). At 64^3
// it took 390 us where cuBLAS takes 323 (fp16), and the forward went from 34.06 / 34.08 to
// 34.29 / 34.29 ms (fp16) and from 34.35 / 34.42 to 34.48 / 34.49 ms (bf16). Tried again
// (against 09df3b2, one run on each GPU): the whole weight resident (1032 x 48 values,
// 116 KB; 96 -> 1032 in two column shares), mma.sync with B through ldmatrix, 16 warps a
// block. With each warp writing its 16 x 64 products from its own staging
// rows (H200), stage 0's maps took 324 / 114 us (ncu) and the bf16 forward 29.50 / 29.46 ->
// 29.76 / 29.74 ms; with a block's warps staging a whole tile of rows and the block writing it
// as one contiguous span (H100), 438 / 184 us against cuBLASLt's 470 / 128 (ncu, where its
// timed choice differs from a plain run's) and 42 -> 122 us at stage 1, the bf16 forward
// 30.78 / 30.76 -> 31.39 / 31.37 ms. Neither came near the output's bandwidth (541 MB takes
// about 0.19 ms at 3 TB/s).
#include <cublas_v2.h>

#include <mutex>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/gemm.cuh"
#include "kernels/cuda/gemm_bias_lt.cuh"
#include "kernels/cuda/narrow_linear.cuh"
#include "kernels/op_checks.h"

namespace voxmamba::kernels::cuda {
namespace {

cublasHandle_t handle() {
  static cublasHandle_t instance = nullptr;
  static std::once_flag once;
  std::call_once(once, [] {
    if (cublasCreate(&instance) != CUBLAS_STATUS_SUCCESS) throw Error("cuBLAS: cannot create a handle");
    if (cublasSetStream(instance, stream()) != CUBLAS_STATUS_SUCCESS)
      throw Error("cuBLAS: cannot set the stream");
  });
  return instance;
}

// y[r, c] = bias[c], V channels a thread (16-byte stores when the row allows them).
template <int V, typename T>
__global__ void broadcast_rows_kernel(const float* bias, T* y, std::int64_t vectors, std::int64_t row_vectors) {
  VOXMAMBA_GRID_STRIDE(i, vectors) {
    const std::int64_t c = (i % row_vectors) * V;
    Vec<T, V> value;
#pragma unroll
    for (int k = 0; k < V; ++k) value.v[k] = bias[c + k];
    value.store(y + i * V);
  }
}

}  // namespace

void gemm(DType type, const void* A, const void* B, void* C, std::int64_t M, std::int64_t N, std::int64_t K,
          std::int64_t lda, std::int64_t ldb, std::int64_t ldc, bool accumulate, std::optional<DType> c_type) {
  if (M == 0 || N == 0) return;
  const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  const cudaDataType_t data = cuda_data_type(type), out = cuda_data_type(c_type.value_or(type));
  const cublasComputeType_t compute = type == DType::f32 ? CUBLAS_COMPUTE_32F_PEDANTIC : CUBLAS_COMPUTE_32F;
  const cublasStatus_t status =
      cublasGemmEx(handle(), CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(N), static_cast<int>(M), static_cast<int>(K),
                   &alpha, B, data, static_cast<int>(ldb), A, data, static_cast<int>(lda), &beta, C, out,
                   static_cast<int>(ldc), compute, CUBLAS_GEMM_DEFAULT);
  if (status != CUBLAS_STATUS_SUCCESS) throw Error("cuBLAS: GEMM failed (status " + std::to_string(status) + ")");
}

void fill_rows_with_bias(DType type, const float* bias, void* y, std::int64_t rows, std::int64_t c) {
  with_float_type(type, "bias", [&](auto tag) {
    using T = decltype(tag);
    T* out = static_cast<T*>(y);
    if (vector_width<T>(c) > 1 && is_aligned16(y)) {
      constexpr int V = 16 / sizeof(T);
      broadcast_rows_kernel<V, T>
          <<<blocks_for(rows * c / V), kThreads, 0, stream()>>>(bias, out, rows * c / V, c / V);
    } else {
      broadcast_rows_kernel<1, T><<<blocks_for(rows * c), kThreads, 0, stream()>>>(bias, out, rows * c, c);
    }
  });
  check_launch("bias");
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias, std::optional<DType> output,
              const Tensor& residual) {
  const Shape out_shape = linear_output_shape(x, weight, bias);
  require_cuda_float(x, "linear", "input");
  require_cuda_float(weight, "linear", "weight");
  require_same_dtype(x, weight, "linear", "weight");
  const DType out_type = output.value_or(x.dtype());
  if (out_type != x.dtype() && !(x.dtype() != DType::f32 && out_type == DType::f32)) {
    throw Error(std::string("linear: a ") + dtype_name(x.dtype()) + " input cannot give a " + dtype_name(out_type) +
                " output (its own type, or float32 from a 16-bit input)");
  }
  require_cuda_float(bias, "linear", "bias");
  if (bias.defined() && bias.dtype() != DType::f32 && bias.dtype() != out_type) {
    throw Error(std::string("linear: the bias must be float32 or of the output's type (") + dtype_name(out_type) +
                "), not " + dtype_name(bias.dtype()));
  }
  // The bias in `type`, cast only where a path needs it: cuBLASLt's bias epilogue takes the
  // output's type (the model's loader keeps such a copy, so that a forward casts none), the
  // other paths read float32.
  const auto bias_as = [&](DType type) { return bias.defined() ? cast(bias, type) : Tensor(); };
  check_linear_residual(x, residual, out_shape, out_type);
  Tensor y = empty_like_device(out_shape, x, out_type);
  const std::int64_t in = weight.dim(0), out = weight.dim(1), rows = x.numel() / in;
  if (residual.defined()) {
    // The skip connections of the encoder's blocks (x + proj2(...), x + out_proj(...)): one
    // cuBLASLt matmul reads the residual as its C (beta = 1) and rounds the sum once, instead
    // of writing the product and adding it in a pass that reads both back.
    if (x.dtype() != DType::f32 &&
        gemm_bias_lt(x.dtype(), x.raw_data(), weight.raw_data(), bias_as(out_type).raw_data(), y.raw_data(), rows,
                     out, in, out_type, x.device(), /*timed=*/false, residual.raw_data())) {
      return y;
    }
    return add(linear(x, weight, bias, output), residual);
  }
  if ((out <= kNarrowOutputs || in <= kNarrowInputs) && narrow_linear(x, weight, bias_as(DType::f32), y)) {
    return y;
  }
  if (bias.defined()) {
    // One cuBLASLt matmul whose epilogue adds the bias, rather than a broadcast of the bias
    // into y and a GEMM that reads it back (beta = 1). H200, base 128^3, the forward with the
    // graph, two rounds, same build: fp16 34.06 / 34.05 -> 33.98 / 34.00 ms, bf16 37.65 /
    // 37.65 -> 37.58 / 37.56 ms. The linear maps of an fp16 forward took 3.04 ms (ncu; 3.19 at
    // ba9fc3b, before).
    // cuBLASLt's bias has the output's type: float32 logits take it as it is, 16-bit outputs
    // the loader's rounded copy (the broadcast below rounds it the same way). Asked for a
    // float32 bias with a 16-bit output (CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE) instead,
    // cuBLASLt 13.0 on the H200 made no plan for any of base's maps: every call fell back to
    // the copy (branch exp/norm-waves-lt-bias).
    if (gemm_bias_lt(x.dtype(), x.raw_data(), weight.raw_data(), bias_as(out_type).raw_data(), y.raw_data(),
                     rows, out, in, out_type, x.device())) {
      return y;
    }
  }
  if (!bias.defined() && is_wide_linear(in, out)) {
    // The wide maps without a bias (the deformable offset heads, 48 or 96 channels into 1032
    // or 384 offsets, the output their whole cost) on the fastest of cuBLASLt's candidates,
    // timed at the first call. H200, base's stage 0 at 64^3 into 1032 offsets (zeros, median
    // of 20): cublasGemmEx took 341 us in fp16 and 405 in bf16, the fastest candidate 286 and
    // 243; a memset of the output takes 125. In the forward (ncu) that map went from 326 to
    // 260 us in fp16; in bf16 a plain run chose one of 226 us (ncu's replays time them
    // otherwise: gemm_bias_lt.cu). With the graph, two rounds interleaved in one run, fp16
    // 30.48 / 30.51 -> 30.29 / 30.42 ms, bf16 30.78 / 30.72 -> 30.45 / 30.47 ms.
    if (gemm_bias_lt(x.dtype(), x.raw_data(), weight.raw_data(), nullptr, y.raw_data(), rows, out, in,
                     out_type, x.device(), /*timed=*/true)) {
      return y;
    }
  }
  // The bias is written first (in the output type) and the product accumulated onto it.
  if (bias.defined()) fill_rows_with_bias(out_type, ptr(bias_as(DType::f32)), y.raw_data(), rows, out);
  gemm(x.dtype(), x.raw_data(), weight.raw_data(), y.raw_data(), rows, out, in, in, out, out, bias.defined(),
       out_type);
  return y;
}

}  // namespace voxmamba::kernels::cuda
