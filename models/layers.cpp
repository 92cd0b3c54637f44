#include "models/layers.h"

#include <algorithm>
#include <cmath>

#include "core/thread_pool.h"

namespace voxmamba::models {
namespace {
constexpr float kNormEpsilon = 1e-5f;  // network.md: LayerNorm and InstanceNorm
}

const Tensor& ParameterReader::get(const std::string& name) const {
  auto found = parameters_.find(join(name));
  if (found == parameters_.end()) throw Error("tensor '" + join(name) + "' is missing");
  return found->second;
}

Tensor ParameterReader::upload_matrix(const Tensor& host) const {
  if (activations_ == DType::f16) {
    require_float16_range(host, "a weight of '" + prefix_ + "'",
                          "--precision fp16 holds the weights of dense convs and linear maps in float16; "
                          "run with --precision bf16 or fp32");
  }
  return kernels::cast(upload(host), activations_);
}

void require_float16_range(const Tensor& host, const std::string& what, const std::string& why) {
  // The rounding's own limit: 65520, halfway from float16's largest value (65504) to the next
  // step, is a tie that rounds to even, which is infinity (as in core/float16.h and the GPU's
  // cast); anything below rounds to 65504 or less. A compare a value, so that loading the
  // network's 60 million parameters in fp16 costs no more than a pass over them.
  constexpr float kFirstOverflow = 65520.0f;
  const float* values = host.data<float>();
  const std::int64_t count = host.numel();
  for (std::int64_t i = 0; i < count; ++i) {
    if (std::isfinite(values[i]) && std::fabs(values[i]) >= kFirstOverflow) {
      throw Error(what + " holds " + std::to_string(values[i]) + ", beyond float16's range (65504): " + why);
    }
  }
}

namespace {

// packed[n][c][b][a] = weight[n][a][b][c]: the one reordering behind every packed layout below.
// In 64 x 64 tiles of (a, c), so that a tile's reads and writes both stay in the L1 cache, and
// in parallel over (n, b, a-tile): loading base (60 million parameters) packed them one value
// at a time, striding through memory on one thread, most of the model's load time.
Tensor swap_outer_and_inner(const Tensor& weight, const Shape& packed_shape, std::int64_t batch,
                            std::int64_t A, std::int64_t B, std::int64_t C) {
  constexpr std::int64_t kTile = 64;
  Tensor packed = Tensor::empty(packed_shape);
  const float* src = weight.data<float>();
  float* dst = packed.data<float>();
  const std::int64_t a_tiles = (A + kTile - 1) / kTile;
  // At least about 2^16 values a task, so that small weights stay on the caller's thread.
  const std::int64_t grain =
      std::max<std::int64_t>(1, (std::int64_t(1) << 16) / std::max<std::int64_t>(1, kTile * C));
  parallel_for(batch * B * a_tiles, grain, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t task = begin; task < end; ++task) {
      const std::int64_t n = task / (B * a_tiles), b = task / a_tiles % B, a0 = task % a_tiles * kTile;
      const std::int64_t a1 = std::min(A, a0 + kTile);
      for (std::int64_t c0 = 0; c0 < C; c0 += kTile) {
        const std::int64_t c1 = std::min(C, c0 + kTile);
        for (std::int64_t a = a0; a < a1; ++a) {
          const float* from = src + ((n * A + a) * B + b) * C;
          for (std::int64_t c = c0; c < c1; ++c) dst[((n * C + c) * B + b) * A + a] = from[c];
        }
      }
    }
  });
  return packed;
}

}  // namespace

Tensor pack_conv3d_weight(const Tensor& weight) {
  const std::int64_t out = weight.dim(0), in = weight.dim(1), taps = weight.numel() / (out * in);
  return swap_outer_and_inner(weight, {taps, in, out}, 1, out, in, taps);
}

Tensor pack_linear_weight(const Tensor& weight) {
  const std::int64_t out = weight.dim(0), in = weight.numel() / out;
  return swap_outer_and_inner(weight, {in, out}, 1, out, 1, in);
}

Tensor pack_conv_transpose_weight(const Tensor& weight) {
  const std::int64_t in = weight.dim(0), out = weight.dim(1);
  return swap_outer_and_inner(weight, {in, 8, out}, in, out, 1, 8);
}

Conv3dLayer Conv3dLayer::load(const ParameterReader& reader, const kernels::ConvParams& params, bool with_bias) {
  Conv3dLayer layer;
  const Tensor& weight = reader.get("weight");  // [out, in/groups, k, k, k]
  const bool depthwise = kernels::is_depthwise(weight.dim(1) * params.groups, weight.dim(0), params);
  const Tensor packed = pack_conv3d_weight(weight);
  layer.weight = depthwise ? reader.upload(packed) : reader.upload_matrix(packed);
  if (with_bias) layer.bias = reader.tensor("bias");
  layer.params = params;
  return layer;
}

LinearLayer LinearLayer::load(const ParameterReader& reader, bool with_bias, std::optional<DType> output) {
  LinearLayer layer;
  layer.weight = reader.upload_matrix(pack_linear_weight(reader.get("weight")));
  if (!with_bias) return layer;
  layer.bias = reader.tensor("bias");
  const DType output_type = output.value_or(reader.activations());
  if (output_type == DType::f16) {
    require_float16_range(reader.get("bias"), "tensor '" + reader.name("bias") + "'",
                          "--precision fp16 holds the biases of linear maps in float16; "
                          "run with --precision bf16 or fp32");
  }
  if (output_type != DType::f32) layer.output_bias = kernels::cast(layer.bias, output_type);
  return layer;
}

LinearLayer linear_rows(const ParameterReader& reader, const Tensor& weight, std::int64_t begin, std::int64_t count,
                        std::int64_t padded) {
  const std::int64_t in = weight.dim(1);
  Tensor rows = Tensor::zeros({padded, in});
  std::copy(weight.data<float>() + begin * in, weight.data<float>() + (begin + count) * in, rows.data<float>());
  return LinearLayer::from_packed(reader.upload_matrix(pack_linear_weight(rows)));
}

NormLayer NormLayer::load(const ParameterReader& reader) {
  return {reader.tensor("weight"), reader.tensor("bias")};
}

Tensor NormLayer::layer_norm(const Tensor& x) const { return kernels::layer_norm(x, weight, bias, kNormEpsilon); }
Tensor NormLayer::instance_norm(const Tensor& x, const kernels::NormEpilogue& epilogue) const {
  return kernels::instance_norm(x, weight, bias, kNormEpsilon, epilogue);
}

Tensor NormLayer::instance_norm_of_conv(const Conv3dLayer& conv, const Tensor& x,
                                        const kernels::NormEpilogue& epilogue) const {
  return kernels::conv3d_instance_norm(x, conv.weight, conv.bias, conv.params, weight, bias, kNormEpsilon,
                                       epilogue);
}

}  // namespace voxmamba::models
