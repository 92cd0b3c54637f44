#pragma once
// A float16 copy of a bfloat16 tensor, scaled by a power of two into float16's range, for
// kernels that do their arithmetic in packed float16 on bfloat16 data (deform_conv.cu): a
// bfloat16 value has 8 significant bits, so within float16's normal range it converts
// exactly; the scale keeps the largest finite magnitude at most 2^14, and being a power of two
// it is undone exactly. Values smaller than float16's normal range (2^-14 after scaling) keep
// fewer bits: they are far below the rounding of the values they are summed with.
#include <cuda_runtime.h>

#include <cmath>

#include "core/tensor.h"

namespace voxmamba::kernels::cuda {

// The copy's scale given the largest finite magnitude of the input: 1 up to 2^14, else
// 2^(14 - e), e the exponent with absmax < 2^e. Trilinear sums (weights summing to at most 1)
// of scaled values then stay at most 2^14 too, well inside float16's 65504.
__host__ __device__ inline float half_copy_scale(float absmax) {
  if (!(absmax > 16384.0f)) return 1.0f;
  int exponent = 0;
  frexpf(absmax, &exponent);  // absmax = m 2^exponent, m in [0.5, 1)
  return ldexpf(1.0f, 14 - exponent);
}

struct ScaledHalfCopy {
  Tensor values;  // float16, x's shape: x * half_copy_scale(*absmax), rounded
  Tensor absmax;  // float32 [1] on x's device: the largest finite |x| (0 if none)
};

// Whether x (bfloat16 on the GPU) can be copied: its elements come in 16-byte vectors.
bool can_make_scaled_half_copy(const Tensor& x);

// Two kernels on the current stream (the magnitude, then the copy); no host synchronisation,
// so it may be captured in a CUDA graph. Infinities and NaNs copy as themselves.
ScaledHalfCopy make_scaled_half_copy(const Tensor& x);

}  // namespace voxmamba::kernels::cuda
