#pragma once
// Shared by the CUDA kernels: error checks that throw voxmamba::Error, launch geometry, and
// argument checks that the tensors live on the GPU in float32.
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "core/tensor.h"

namespace voxmamba::kernels::cuda {

void check_cuda(cudaError_t status, const char* what);
// After a launch: reports a bad configuration at once (execution errors surface at the
// next synchronising call).
inline void check_launch(const char* kernel) { check_cuda(cudaGetLastError(), kernel); }

void require_cuda_f32(const Tensor& x, const char* op, const char* what);

constexpr int kThreads = 256;
inline unsigned int blocks_for(std::int64_t work, int threads = kThreads) {
  const std::int64_t blocks = (work + threads - 1) / threads;
  return static_cast<unsigned int>(blocks < 1 ? 1 : (blocks > 2147483647 ? 2147483647 : blocks));
}

inline const float* ptr(const Tensor& t) { return t.defined() ? static_cast<const float*>(t.raw_data()) : nullptr; }
inline float* mutable_ptr(Tensor& t) { return static_cast<float*>(t.raw_data()); }

// A tensor on the same GPU as `like`.
inline Tensor empty_like_device(const Shape& shape, const Tensor& like, DType dtype = DType::f32) {
  return Tensor::empty(shape, dtype, like.device());
}

}  // namespace voxmamba::kernels::cuda
