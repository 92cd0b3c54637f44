// The one dispatch point: an op runs on the device its first input lives on.
#include "kernels/ops.h"

#include <chrono>
#include <string_view>

#include "kernels/backend.h"
#include "kernels/cpu/cpu_ops.h"
#ifdef VOXMAMBA_HAVE_CUDA
#include "kernels/cuda/cuda_ops.h"
#endif

namespace voxmamba::kernels {
namespace {

bool g_profiling = false;
std::map<std::string, OpTime> g_profile;

// Times one op call when profiling is on (waiting for the device at both ends).
class OpTimer {
 public:
  // The label is copied only while profiling: ops are called hundreds of times a forward.
  OpTimer(std::string_view label, const Tensor& x) : device_(x.defined() ? x.device() : Device::cpu()) {
    if (!g_profiling) return;
    label_ = label;
    synchronize(device_);
    start_ = std::chrono::steady_clock::now();
  }
  ~OpTimer() {
    if (!g_profiling) return;
    synchronize(device_);
    OpTime& t = g_profile[label_];
    t.milliseconds += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start_).count();
    t.calls += 1;
  }

 private:
  std::string label_;
  Device device_;
  std::chrono::steady_clock::time_point start_;
};

// True when the op must run on the GPU. A CUDA tensor in a build without CUDA kernels is an
// error rather than a silent copy to the host.
bool on_gpu(Op op, const Tensor& x) {
  if (!x.defined()) throw Error(std::string(op_name(op)) + ": input is missing");
  if (x.device().is_cpu()) return false;
#ifdef VOXMAMBA_HAVE_CUDA
  return true;
#else
  throw Error(std::string(op_name(op)) + ": no kernel for device " + x.device().name() + " in this build");
#endif
}

}  // namespace

// Runs fn on x's device, profiled under `label` (usually the op's name).
#ifdef VOXMAMBA_HAVE_CUDA
#define VOXMAMBA_DISPATCH_AS(label, op, x, fn, ...) \
  (OpTimer(label, x), on_gpu(op, x) ? cuda::fn(__VA_ARGS__) : cpu::fn(__VA_ARGS__))
#else
#define VOXMAMBA_DISPATCH_AS(label, op, x, fn, ...) (OpTimer(label, x), on_gpu(op, x), cpu::fn(__VA_ARGS__))
#endif
#define VOXMAMBA_DISPATCH(op, x, fn, ...) VOXMAMBA_DISPATCH_AS(op_name(op), op, x, fn, __VA_ARGS__)

void set_op_profiling(bool enabled) { g_profiling = enabled; }
std::map<std::string, OpTime> op_profile() { return g_profile; }
void reset_op_profile() { g_profile.clear(); }

const char* token_order_name(TokenOrder order) {
  switch (order) {
    case TokenOrder::Forward: return "fwd";
    case TokenOrder::Backward: return "bwd";
    case TokenOrder::Slice: return "slice";
  }
  return "?";
}

namespace {

// Profiled in two classes: dense convs run on tensor cores, depthwise ones on CUDA cores.
// Dense convs are also timed per shape (kernel, channels, output size): they are few and each
// is a different problem for cuDNN.
std::string conv3d_label(const Tensor& x, const Tensor& weight, const ConvParams& params) {
  const bool depthwise = x.rank() == 5 && weight.rank() == 3 && is_depthwise(x.dim(4), weight.dim(2), params);
  std::string label = depthwise ? "conv3d_depthwise" : "conv3d_dense";
  if (g_profiling && !depthwise && x.rank() == 5 && weight.rank() == 3) {
    label += " k" + std::to_string(params.kernel) + "s" + std::to_string(params.stride) + " " +
             std::to_string(x.dim(4)) + "->" + std::to_string(weight.dim(2)) + " @" +
             std::to_string(conv_output_size(x.dim(1), params));
  }
  return label;
}

}  // namespace

Tensor conv3d(const Tensor& x, const Tensor& weight, const Tensor& bias, const ConvParams& params) {
  return VOXMAMBA_DISPATCH_AS(conv3d_label(x, weight, params), Op::Conv3d, x, conv3d, x, weight, bias,
                              params);
}
Tensor conv3d_instance_norm(const Tensor& x, const Tensor& weight, const Tensor& bias,
                            const ConvParams& params, const Tensor& gamma, const Tensor& beta, float eps,
                            const NormEpilogue& epilogue) {
#ifdef VOXMAMBA_HAVE_CUDA
  if (on_gpu(Op::Conv3dInstanceNorm, x)) {
    // One op on the GPU, profiled with the dense convs (its norm included).
    const OpTimer timer(g_profiling ? conv3d_label(x, weight, params) + " + instance_norm" : std::string(),
                        x);
    return cuda::conv3d_instance_norm(x, weight, bias, params, gamma, beta, eps, epilogue);
  }
#endif
  return instance_norm(conv3d(x, weight, bias, params), gamma, beta, eps, epilogue);
}
Tensor conv_transpose3d_k2s2(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& skip) {
  return VOXMAMBA_DISPATCH(Op::ConvTranspose3d, x, conv_transpose3d_k2s2, x, weight, bias, skip);
}
Tensor deform_dwconv3d(const Tensor& x, const Tensor& offsets, const Tensor& weight, const Tensor& bias,
                       int kernel, int dilation, const Tensor& offset_bias) {
  return VOXMAMBA_DISPATCH(Op::DeformDepthwiseConv3d, x, deform_dwconv3d, x, offsets, weight, bias, kernel, dilation,
                           offset_bias);
}
Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps) {
  return VOXMAMBA_DISPATCH(Op::LayerNorm, x, layer_norm, x, gamma, beta, eps);
}
Tensor instance_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps,
                     const NormEpilogue& epilogue) {
  return VOXMAMBA_DISPATCH(Op::InstanceNorm, x, instance_norm, x, gamma, beta, eps, epilogue);
}
Tensor gelu(const Tensor& x) { return VOXMAMBA_DISPATCH(Op::Gelu, x, gelu, x); }
Tensor silu(const Tensor& x) { return VOXMAMBA_DISPATCH(Op::Silu, x, silu, x); }
Tensor leaky_relu(const Tensor& x, float slope) {
  return VOXMAMBA_DISPATCH(Op::LeakyRelu, x, leaky_relu, x, slope);
}
Tensor softplus(const Tensor& x) { return VOXMAMBA_DISPATCH(Op::Softplus, x, softplus, x); }
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias, std::optional<DType> output,
              const Tensor& residual) {
  // Profiled in three widths: narrow outputs (the Mamba blocks' dt, B, C projections), wide
  // ones (is_wide_linear: the deformable offset heads' 3 K^3), and the rest.
  const std::int64_t in = weight.rank() == 2 ? weight.dim(0) : 0, out = weight.rank() == 2 ? weight.dim(1) : 0;
  const char* label = out < 32 ? "linear_narrow" : (is_wide_linear(in, out) ? "linear_wide" : "linear");
  return VOXMAMBA_DISPATCH_AS(label, Op::Linear, x, linear, x, weight, bias, output, residual);
}
Tensor reorder_tokens(const Tensor& x, TokenOrder order, const VolumeShape& volume) {
  return VOXMAMBA_DISPATCH(Op::ReorderTokens, x, reorder_tokens, x, order, volume);
}
Tensor restore_tokens(const Tensor& x, TokenOrder order, const VolumeShape& volume) {
  return VOXMAMBA_DISPATCH(Op::RestoreTokens, x, restore_tokens, x, order, volume);
}
Tensor causal_conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias, TokenOrder order,
                     const VolumeShape& volume, bool apply_silu) {
  return VOXMAMBA_DISPATCH(Op::CausalConv1d, x, causal_conv1d, x, weight, bias, order, volume, apply_silu);
}
Tensor selective_scan(const ScanInputs& in, TokenOrder order, const VolumeShape& volume) {
  return VOXMAMBA_DISPATCH(Op::SelectiveScan, in.u, selective_scan, in, order, volume);
}
Tensor add(const Tensor& a, const Tensor& b) { return VOXMAMBA_DISPATCH(Op::Add, a, add, a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return VOXMAMBA_DISPATCH(Op::Mul, a, mul, a, b); }
Tensor concat_channels(const Tensor& a, const Tensor& b) {
  return VOXMAMBA_DISPATCH(Op::ConcatChannels, a, concat_channels, a, b);
}
Tensor softmax(const Tensor& x) { return VOXMAMBA_DISPATCH(Op::Softmax, x, softmax, x); }
Tensor argmax(const Tensor& x) { return VOXMAMBA_DISPATCH(Op::Argmax, x, argmax, x); }
Tensor cast(const Tensor& x, DType dtype) { return VOXMAMBA_DISPATCH(Op::Cast, x, cast, x, dtype); }
Tensor flip(const Tensor& x, int axis_mask) { return VOXMAMBA_DISPATCH(Op::Flip, x, flip, x, axis_mask); }

}  // namespace voxmamba::kernels
