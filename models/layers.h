#pragma once
// Building blocks shared by the network's blocks: reading parameters by name, converting
// the PyTorch layout of network.md into the packed layout kernels/ops.h expects (done once,
// at load time), and the three layer kinds everything is built from.
#include <optional>
#include <string>

#include "kernels/ops.h"
#include "models/parameters.h"

namespace voxmamba::models {

// A view of a ParameterMap under a name prefix: reader.child("dlka").get("norm/weight"),
// which also knows the device the network's tensors live on and the element type of its
// activations (float32, or bfloat16 or float16 on the GPU).
class ParameterReader {
 public:
  ParameterReader(const ParameterMap& parameters, std::string prefix, Device device, DType activations = DType::f32)
      : parameters_(parameters), prefix_(std::move(prefix)), device_(device), activations_(activations) {}
  ParameterReader child(const std::string& name) const { return {parameters_, join(name), device_, activations_}; }
  // The stored tensor (PyTorch layout, on the CPU).
  const Tensor& get(const std::string& name) const;
  bool has(const std::string& name) const { return parameters_.count(join(name)) != 0; }
  // A packed or stored tensor moved to the network's device.
  Tensor upload(const Tensor& host) const { return device_.is_cpu() ? host : host.to(device_); }
  Tensor tensor(const std::string& name) const { return upload(get(name)); }
  // The weight of a GEMM-shaped op (dense conv, linear): moved and cast to the activations'
  // type, as kernels/ops.h requires; in float16, after checking that it fits that range.
  // Every other parameter stays float32.
  Tensor upload_matrix(const Tensor& host) const;
  DType activations() const { return activations_; }
  // The full name of a tensor under this reader, for messages.
  std::string name(const std::string& leaf) const { return join(leaf); }

 private:
  std::string join(const std::string& name) const { return prefix_.empty() ? name : prefix_ + "/" + name; }
  const ParameterMap& parameters_;
  std::string prefix_;
  Device device_;
  DType activations_;
};

// Throws Error when a value of `host` (float32, on the CPU) rounds past float16's range
// (beyond 65504), rather than letting it become an infinity on the GPU that surfaces only as
// non-finite logits: `what` names the tensor, `why` says what holds it in float16 and what to
// run instead.
void require_float16_range(const Tensor& host, const std::string& what, const std::string& why);

// Conv3d [out, in/g, k, k, k] -> [k^3, in/g, out].
Tensor pack_conv3d_weight(const Tensor& weight);
// Linear [out, in] or pointwise Conv3d [out, in, 1, 1, 1] -> [in, out].
Tensor pack_linear_weight(const Tensor& weight);
// ConvTranspose3d [in, out, 2, 2, 2] -> [in, 8, out].
Tensor pack_conv_transpose_weight(const Tensor& weight);

struct Conv3dLayer {
  Tensor weight, bias;  // packed; bias may be undefined
  kernels::ConvParams params;

  static Conv3dLayer load(const ParameterReader& reader, const kernels::ConvParams& params, bool with_bias);
  Tensor forward(const Tensor& x) const { return kernels::conv3d(x, weight, bias, params); }
};

struct LinearLayer {
  Tensor weight, bias;  // [in, out]; bias (float32) may be undefined
  // With 16-bit outputs, the bias rounded once to their type: the GPU's matmul adds a bias of
  // its output's type (kernels/ops.h), which would otherwise be cast on every call. Undefined
  // with float32 outputs.
  Tensor output_bias;

  // `output`: the type forward returns, when it is not the activations' (the head's float32
  // logits). Only a 16-bit output has the bias copy, and only a float16 one checks the bias
  // against that type's range: a float32 output adds the float32 bias as it is.
  static LinearLayer load(const ParameterReader& reader, bool with_bias, std::optional<DType> output = std::nullopt);
  static LinearLayer from_packed(Tensor weight, Tensor bias = {}) {
    return {std::move(weight), std::move(bias), Tensor()};
  }
  Tensor forward(const Tensor& x, std::optional<DType> output = std::nullopt) const {
    return kernels::linear(x, weight, bias_for(output.value_or(x.dtype())), output);
  }
  // forward(x) + residual, the sum made by the map itself (kernels::linear's residual).
  Tensor forward_plus(const Tensor& x, const Tensor& residual) const {
    return kernels::linear(x, weight, bias_for(x.dtype()), std::nullopt, residual);
  }
  const Tensor& bias_for(DType output) const {
    return output_bias.defined() && output_bias.dtype() == output ? output_bias : bias;
  }
};

// GEMM sizes are padded to multiples of kGemmAlignment elements with zero weights, which add
// exactly nothing: 16-bit GEMMs whose inner or outer size (or row stride) is not a multiple
// of 8 elements (16 bytes) miss cuBLAS's tensor-core kernels and fall back to slow ones.
constexpr std::int64_t kGemmAlignment = 8;
inline std::int64_t gemm_aligned(std::int64_t size) {
  return (size + kGemmAlignment - 1) / kGemmAlignment * kGemmAlignment;
}

// Rows [begin, begin + count) of a PyTorch Linear weight [out, in], packed to [in, padded]
// with zero columns from count to padded; no bias.
LinearLayer linear_rows(const ParameterReader& reader, const Tensor& weight, std::int64_t begin, std::int64_t count,
                        std::int64_t padded);

struct NormLayer {
  Tensor weight, bias;
  static NormLayer load(const ParameterReader& reader);
  Tensor layer_norm(const Tensor& x) const;     // over channels, eps 1e-5
  Tensor instance_norm(const Tensor& x, const kernels::NormEpilogue& epilogue = {}) const;  // over D, H, W, eps 1e-5
  // instance_norm(conv.forward(x), epilogue), as one op (kernels::conv3d_instance_norm).
  Tensor instance_norm_of_conv(const Conv3dLayer& conv, const Tensor& x,
                               const kernels::NormEpilogue& epilogue = {}) const;
};

}  // namespace voxmamba::models
