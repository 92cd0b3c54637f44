#pragma once
// An orientation's token order on the GPU, applied by index rather than by copying: TokenIndex
// maps a position to its token (ops.h's token_at in 32 bits), TokenWalker steps through the
// positions without divisions. Shared by the sequence ops and the selective scan.
#include <cstdint>

#include "core/error.h"
#include "kernels/ops.h"

namespace voxmamba::kernels::cuda {

// token_at in 32-bit arithmetic (the host checks that a sample's sequence is shorter than
// 2^31 tokens): a 64-bit division costs dozens of instructions and the slice order needs
// one per token.
struct TokenIndex {
  TokenOrder order;
  int tokens, depth, plane;  // L, D, H*W
  __device__ __forceinline__ int operator()(int i) const {
    return token_at<int>(i, order, tokens, depth, plane);
  }
};

inline TokenIndex token_index(TokenOrder order, const VolumeShape& volume) {
  if (volume.tokens() >= (std::int64_t(1) << 31))
    throw Error("sequence ops: a volume of 2^31 voxels or more");
  return {order, static_cast<int>(volume.tokens()), static_cast<int>(volume.depth),
          static_cast<int>(volume.height * volume.width)};
}

// Walks an orientation's sequence from position `begin`, one token per step, without
// divisions: the slice order steps a plane at a time and wraps to the next (h, w) column.
struct TokenWalker {
  TokenIndex index;
  int token, d, column;
  __device__ __forceinline__ TokenWalker(const TokenIndex& idx, int begin)
      : index(idx), token(idx(begin)), d(begin % idx.depth), column(begin / idx.depth) {}
  __device__ __forceinline__ void step() {
    if (index.order == TokenOrder::Forward) {
      ++token;
    } else if (index.order == TokenOrder::Backward) {
      --token;
    } else if (++d == index.depth) {
      d = 0;
      token = ++column;
    } else {
      token += index.plane;
    }
  }
};

}  // namespace voxmamba::kernels::cuda
