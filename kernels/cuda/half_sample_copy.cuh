#pragma once
// The float16 copy of a 16-bit channels-last volume that the deformable conv samples
// (deform_conv.cu): its corners are summed in packed float16, and the copy has a zero halo
// (one voxel or more), so that every neighbour of a sample it reads lies within the copy and the
// kernel needs no bounds checks or clamps. Float16 data copies as it is. Bfloat16 data is
// scaled by a power of two into float16's range: a bfloat16 value has 8 significant bits, so
// within float16's normal range it converts exactly; the scale keeps the largest finite
// magnitude at most 2^14, and being a power of two it is undone exactly. Values smaller than
// float16's normal range (2^-14 after scaling) keep fewer bits: they are far below the
// rounding of the values they are summed with.
#include <cuda_runtime.h>

#include <cmath>

#include "core/tensor.h"

namespace voxmamba::kernels::cuda {

// Where the volume lies in its copy: after one zero voxel along d and h, and `low_w` along w;
// the copy is D + 2 voxels deep, copy_h = H + 2 high and copy_w wide, at least one zero voxel
// past the volume along each axis. low_w and copy_w are the least that start each row of the
// volume on a 128-byte line, as x's rows start where W C is a multiple of 64 (base's volumes):
// a copy W + 2 wide put every other row half a line off, so the warps' corner loads touched
// more lines. H100, base 128^3, bf16, offsets in [-0.5, 0.5], stage 0's two deformable convs
// (ncu; 48 channels, rows of 64 voxels padded to 66 or, aligned, to 4 + 64 + 4): L1/TEX busy
// 95.3% and 85.1% at W + 2 against 92.6% and 82.4% aligned, 1.59 and 3.62 ms against 1.46 and
// 3.51 ms.
struct HalfSampleLayout {
  int copy_h, copy_w, low_w;
};

// The copy's scale given the largest finite magnitude of the input: 1 up to 2^14, else
// 2^(14 - e), e the exponent with absmax < 2^e. Trilinear sums (weights summing to at most 1)
// of scaled values then stay at most 2^14 too, well inside float16's 65504.
__host__ __device__ inline float half_copy_scale(float absmax) {
  if (!(absmax > 16384.0f)) return 1.0f;
  int exponent = 0;
  frexpf(absmax, &exponent);  // absmax = m 2^exponent, m in [0.5, 1)
  return ldexpf(1.0f, 14 - exponent);
}

struct HalfSampleCopy {
  // float16 [N, D + 2, copy_h, copy_w, C]: x times the scale, rounded, where `layout` puts
  // it; zeros around it.
  Tensor values;
  HalfSampleLayout layout;
  // bfloat16 x: float32 [1] on x's device, the largest finite |x| (0 if none), from which the
  // scale follows. Float16 x: an empty tensor, the scale being 1.
  Tensor absmax;
};

// Whether x can be copied: a float16 or bfloat16 GPU tensor [N, D, H, W, C] whose channels
// come in aligned 16-byte vectors and whose copy's samples have fewer than 2^31 elements
// (the deformable kernel's index arithmetic is 32-bit within a sample).
bool can_make_half_sample_copy(const Tensor& x);

// Kernels on the current stream (for bfloat16 the magnitude, then the copy); no host
// synchronisation, so it may be captured in a CUDA graph. Infinities and NaNs copy as
// themselves.
HalfSampleCopy make_half_sample_copy(const Tensor& x);

}  // namespace voxmamba::kernels::cuda
