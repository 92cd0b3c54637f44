#pragma once
// A conv's shape on channels-last volumes, input and output, as the GPU's conv kernels index it.
#include <cstdint>

#include "core/tensor.h"
#include "kernels/ops.h"

namespace voxmamba::kernels::cuda {

struct ConvGeometry {
  std::int64_t N, D, H, W, C;   // input
  std::int64_t Do, Ho, Wo, Co;  // output
  int kernel, stride, padding, dilation;
};

inline ConvGeometry conv_geometry(const Shape& in, const Shape& out, const ConvParams& p) {
  return {in[0],    in[1],    in[2],     in[3],     in[4],  // input
          out[1],   out[2],   out[3],    out[4],            // output
          p.kernel, p.stride, p.padding, p.dilation};
}

}  // namespace voxmamba::kernels::cuda
