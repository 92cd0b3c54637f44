#pragma once
// Every numeric op of the engine, declared once. Each op is defined by its plain-loop
// version in kernels/reference/, implemented for the CPU in kernels/cpu/ and for CUDA in
// kernels/cuda/, and dispatched here by the input's device.
//
// Element types: activations are float32, or bfloat16 or float16 on the GPU (every kernel
// computes and accumulates in float32 and rounds once when it stores). The weights of GEMM-shaped ops
// (dense conv3d, conv_transpose3d_k2s2, linear) have the activations' type; every other
// parameter (biases, norm affines, depthwise weights, scan parameters) is float32, except
// where an op says the GPU also takes a 16-bit copy (linear's bias, the deformable conv's
// weight). Outputs have the input's type.
//
// Conventions: activations are channels-last (N D H W C; sequences N L E with
// L = D*H*W in token order t = (d*H + h)*W + w). Weights are in the engine's packed layout,
// which models/ derives from the PyTorch layout of network.md at load time; each
// declaration names its layout. An undefined Tensor passed as a bias means "no bias".
#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "core/tensor.h"

// Small index helpers below are shared with the CUDA kernels.
#ifdef __CUDACC__
#define VOXMAMBA_HOST_DEVICE __host__ __device__
#else
#define VOXMAMBA_HOST_DEVICE
#endif

namespace voxmamba::kernels {

enum class Op : int {
  Conv3d,
  ConvTranspose3d,
  DeformDepthwiseConv3d,
  LayerNorm,
  InstanceNorm,
  Conv3dInstanceNorm,
  Gelu,
  Silu,
  LeakyRelu,
  Softplus,
  Linear,
  CausalConv1d,
  SelectiveScan,
  ReorderTokens,
  RestoreTokens,
  Add,
  Mul,
  ConcatChannels,
  Softmax,
  Argmax,
  Cast,
  Flip,
  Count
};

// clang-format off
inline constexpr std::array<const char*, static_cast<int>(Op::Count)> kOpNames = {
    "conv3d",        "conv_transpose3d", "deform_dwconv3d", "layer_norm",     "instance_norm",
    "conv3d_instance_norm",
    "gelu",          "silu",             "leaky_relu",      "softplus",       "linear",
    "causal_conv1d", "selective_scan",   "reorder_tokens",  "restore_tokens", "add",
    "mul",           "concat_channels",  "softmax",         "argmax",         "cast",
    "flip"};
// clang-format on
// A new op that misses the name table fails here, not at run time.
static_assert(kOpNames.size() == static_cast<std::size_t>(Op::Count), "every Op needs a name");

inline const char* op_name(Op op) { return kOpNames[static_cast<int>(op)]; }

// Per-op wall time, for finding where a forward pass spends its time: when enabled, every
// dispatched op waits for its device and adds its time here. Off by default (it serialises
// the GPU); the forward benchmark's --profile turns it on.
void set_op_profiling(bool enabled);
struct OpTime {
  double milliseconds = 0;
  std::int64_t calls = 0;
};
// By label: the op's name, except conv3d ("conv3d_depthwise", and "conv3d_dense" with the
// shape: "conv3d_dense k3s1 48->48 @128") and linear ("linear_narrow" below 32 outputs,
// "linear_wide" at 4x its inputs or more, else "linear").
std::map<std::string, OpTime> op_profile();  // since the last reset
void reset_op_profile();

// ---- convolutions -------------------------------------------------------------------

struct ConvParams {
  int kernel = 1;  // cubic kernels only: K x K x K
  int stride = 1;
  int padding = 0;
  int dilation = 1;
  int groups = 1;
};

// out size per axis: (in + 2*padding - dilation*(kernel-1) - 1) / stride + 1
std::int64_t conv_output_size(std::int64_t in, const ConvParams& params);

// One group per channel in and out: the backends' direct depthwise kernels, whose weights
// stay float32 whatever the activations' type (see "Element types" above).
inline bool is_depthwise(std::int64_t in_channels, std::int64_t out_channels, const ConvParams& params) {
  return params.groups == in_channels && params.groups == out_channels;
}

// x [N,D,H,W,Cin], weight [K*K*K, Cin/groups, Cout] (tap-major, taps in d,h,w raster order),
// bias [Cout] -> [N,Do,Ho,Wo,Cout]. Output channel o belongs to group o / (Cout/groups).
Tensor conv3d(const Tensor& x, const Tensor& weight, const Tensor& bias, const ConvParams& params);

// Transposed conv with kernel 2, stride 2: x [N,D,H,W,Cin], weight [Cin, 8, Cout] (the 8
// sub-voxel positions in d,h,w raster order) -> [N,2D,2H,2W,Cout]. Each input voxel writes
// its own 2x2x2 block, so this is one GEMM and a scatter. With `skip` [N,2D,2H,2W,Cs] of x's
// type (the decoder's UpBlock), the result is concat[upsampled, skip] along channels,
// [N,2D,2H,2W,Cout+Cs], which the GPU writes in one pass instead of a scatter and a concat.
Tensor conv_transpose3d_k2s2(const Tensor& x, const Tensor& weight, const Tensor& bias,
                             const Tensor& skip = Tensor());

// Deformable depthwise conv of network.md, same-size output:
//   y[p,c] = b[c] + sum_k w[k,c] * trilinear(x[.,c], p + dilation*t_k + offsets[p,k,:])
// x [N,D,H,W,C], offsets [N,D,H,W,P] with P >= 3*K*K*K (channel 3*k + axis, axis 0=d 1=h 2=w,
// in voxels; channels from 3*K*K*K on are ignored, so that rows can be padded for alignment),
// weight [K*K*K, C], bias [C]. t_k runs from -(K-1)/2 to (K-1)/2 per axis in raster order;
// samples outside the volume read zero. offset_bias [3*K*K*K] (optional) is added to every
// voxel's offsets: the offset head's own bias, folded in here so that its GEMM, the widest
// of the network (3 K^3 = 1029 channels), writes its output once instead of adding a bias.
// weight is float32, or float16 with 16-bit x on the GPU: there the weights are read in
// float16 (kernels/cuda/deform_conv.cu, TapWeight), no coarser than x itself is held, so the
// model's loader rounds them once (after checking that they lie within float16's range)
// instead of each call rounding a float32 weight. Float32 x, and the CPU, take float32 only.
Tensor deform_dwconv3d(const Tensor& x, const Tensor& offsets, const Tensor& weight, const Tensor& bias,
                       int kernel, int dilation, const Tensor& offset_bias = Tensor());

// ---- normalisation and activations ----------------------------------------------------

// Over the last axis (channels), per token: (x - mean) / sqrt(var + eps) * gamma + beta.
Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps);
// Over D,H,W per sample and channel, biased variance, with affine gamma/beta [C], and what
// follows it in the decoder's residual blocks fused in (one pass over memory instead of
// three): y = act(norm(x) + residual), the residual (x's shape and type) optional, act the
// identity or LeakyReLU(leaky_slope). With residual_gamma and residual_beta ([C], float32)
// the residual is itself instance-normalised first, with those and the same eps: the
// decoder's skip, IN(pw(x)), is then added in the same pass instead of being normalised and
// written in one of its own.
struct NormEpilogue {
  Tensor residual;
  bool leaky_relu = false;
  float leaky_slope = 0.01f;
  Tensor residual_gamma{}, residual_beta{};
};
Tensor instance_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps,
                     const NormEpilogue& epilogue = {});
// instance_norm(conv3d(x, weight, bias, params), gamma, beta, eps, epilogue) as one op (the
// decoder's residual blocks), so that a backend may gather the norm's statistics while the conv
// writes its output instead of reading it again: the GPU does for its 3^3 convs into 48
// channels in 16 bits (the full-resolution decoder's). The statistics are then summed in
// another order, so the result may differ from the two ops' in the last bits.
Tensor conv3d_instance_norm(const Tensor& x, const Tensor& weight, const Tensor& bias,
                            const ConvParams& params, const Tensor& gamma, const Tensor& beta, float eps,
                            const NormEpilogue& epilogue = {});

Tensor gelu(const Tensor& x);  // exact: 0.5 x (1 + erf(x / sqrt 2))
Tensor silu(const Tensor& x);  // x * sigmoid(x)
Tensor leaky_relu(const Tensor& x, float slope);
Tensor softplus(const Tensor& x);  // log(1 + e^x), and x itself above 20 as PyTorch does

// ---- dense algebra --------------------------------------------------------------------

// x [..., In], weight [In, Out], bias [Out] -> [..., Out]. Pointwise convs are this op. The
// output has x's type unless `output` says otherwise: a 16-bit product may be written in
// float32 (the network's logits, which bfloat16 would round by up to 2^-9 of their size).
// `residual` (optional, the output's shape and type) is added to the result: x W + bias +
// residual, rounded once, so that a block's skip connection costs no pass of its own. The
// bias is float32, or on the GPU of a 16-bit output's type: cuBLASLt adds a bias of the
// output's type, and the model's loader rounds it once rather than every call a copy.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias,
              std::optional<DType> output = std::nullopt, const Tensor& residual = Tensor());
// A map to at least 4x its inputs (the deformable offset heads: 48 or 96 channels into 3 K^3):
// its output is its whole cost. Without a bias the GPU times its GEMM's algorithm at the first
// call (linear.cu); profiles label it apart.
inline bool is_wide_linear(std::int64_t in, std::int64_t out) { return out >= 4 * in; }

// ---- sequences over a volume's voxels ---------------------------------------------------

// The three orientations of the Mamba block. A sequence position i of an orientation visits
// token token_at(i): fwd i; bwd L-1-i; slice: every (h, w) through all d, i = (h*W + w)*D + d.
enum class TokenOrder { Forward, Backward, Slice };
inline constexpr std::array<TokenOrder, 3> kTokenOrders = {TokenOrder::Forward, TokenOrder::Backward,
                                                           TokenOrder::Slice};
const char* token_order_name(TokenOrder order);  // "fwd", "bwd", "slice" as in network.md

struct VolumeShape {
  std::int64_t depth = 1, height = 1, width = 1;
  VOXMAMBA_HOST_DEVICE std::int64_t tokens() const { return depth * height * width; }
};

// Token index visited at sequence position i, in any integer type: the GPU uses 32 bits,
// where a division per token is several times cheaper. `plane` is height * width.
template <typename Index>
VOXMAMBA_HOST_DEVICE inline Index token_at(Index i, TokenOrder order, Index tokens, Index depth, Index plane) {
  switch (order) {
    case TokenOrder::Forward: return i;
    case TokenOrder::Backward: return tokens - 1 - i;
    case TokenOrder::Slice: return (i % depth) * plane + i / depth;
  }
  return i;
}
VOXMAMBA_HOST_DEVICE inline std::int64_t token_at(std::int64_t i, TokenOrder order, const VolumeShape& volume) {
  return token_at<std::int64_t>(i, order, volume.tokens(), volume.depth, volume.height * volume.width);
}

// x [N,L,F] in token order -> [N,L,F] in `order`'s sequence order, and back.
Tensor reorder_tokens(const Tensor& x, TokenOrder order, const VolumeShape& volume);
Tensor restore_tokens(const Tensor& x, TokenOrder order, const VolumeShape& volume);

// Causal depthwise conv along `order`'s sequence, d_conv-1 zeros before its first token:
//   y[i,e] = b[e] + sum_j w[j,e] * x[i - (K-1) + j, e]   (i, i-... are sequence positions)
// x [N,L,E] and y in token order (the orientation is applied by index, not by copy),
// weight [K, E], bias [E]; SiLU applied to y when `apply_silu`.
Tensor causal_conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias, TokenOrder order,
                     const VolumeShape& volume, bool apply_silu);

// Selective scan (Mamba, Gu & Dao 2023, eq. 2a/2b with ZOH-simplified B) along `order`:
//   dt_i = softplus(delta[i,e] + delta_bias[e])
//   h_i[e,s] = exp(dt_i A[e,s]) h_{i-1}[e,s] + dt_i B[i,s] u[i,e],  h_{-1} = 0
//   y[i,e] = sum_s C[i,s] h_i[e,s] + D[e] u[i,e]
// u, delta [N,L,E]; B, C [N,L,S]; A [E,S] (already -exp(A_log)); delta_bias, D [E].
// All tensors and y are in token order.
// Optional epilogue, so that the Mamba block's sum over orientations and its gate cost no
// passes of their own: with `sum` [N,L,E], y[i,e] += sum[i,e]; then with `gate` [N,L,E],
// y[i,e] *= SiLU(gate[i,e]). Both have u's type; y is rounded once, after both.
// Instead of delta, B and C, the Mamba block's form: x_proj's whole output `projected`
// [N,L,P] of u's type, each row [dt_in (R) | padding | B (S) | C (S)] with B and C its last
// 2S columns, and dt_weight [R, E] (float32, dt_proj's weight transposed); the scan forms
// delta[i,e] = sum_r dt_in[i,r] dt_weight[r,e] itself, in float32, rounded to u's type as
// dt_proj's output would be. One GEMM then writes dt_in, B and C, and no E-wide delta is
// written and read back. Give one form or the other.
struct ScanInputs {
  Tensor u, delta, delta_bias, A, B, C, D;
  Tensor sum, gate;
  Tensor projected, dt_weight;
  bool is_projected() const { return projected.defined() || dt_weight.defined(); }
};
Tensor selective_scan(const ScanInputs& in, TokenOrder order, const VolumeShape& volume);

// ---- elementwise and reductions ---------------------------------------------------------

Tensor add(const Tensor& a, const Tensor& b);  // same shapes
Tensor mul(const Tensor& a, const Tensor& b);  // same shapes
// Concatenation along the last axis: [..., Ca] ++ [..., Cb] -> [..., Ca+Cb].
Tensor concat_channels(const Tensor& a, const Tensor& b);
Tensor softmax(const Tensor& x);  // over the last axis
Tensor argmax(const Tensor& x);   // over the last axis -> int32, first maximum wins

// float32 <-> bfloat16 or float16, rounding to nearest even; a tensor already of `dtype` comes back as is.
Tensor cast(const Tensor& x, DType dtype);

// Mirroring test-time augmentation: reverses the spatial axes selected by `axis_mask` (bit 1 =
// d, 2 = h, 4 = w) of an [N, D, H, W, C] or [D, H, W, C] tensor of any element type, into a new
// tensor on the same device. A flip is its own inverse: flip the input, run the network, flip
// the output back.
Tensor flip(const Tensor& x, int axis_mask);

}  // namespace voxmamba::kernels
