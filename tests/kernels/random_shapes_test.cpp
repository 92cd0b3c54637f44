// Every op of kernels/ops.h on drawn shapes: sizes, channel counts, kernels, strides,
// dilations, groups, paddings, token orders and optional inputs drawn from a fixed seed, each
// draw run on the reference and on the CPU backend (and on the GPU in float32, bfloat16 and
// float16 where there is one), through the harness of op_case.h. ops_test.cpp picks shapes by
// hand for the paths each backend takes; the draws here reach the combinations nobody picked.
//
// The draws are the same on every machine (a 64-bit Mersenne twister reduced by modulo; the
// standard distributions are implementation-defined), so a failure names a case that can be
// run again. Each draw is bounded in work so that the reference's plain loops stay quick.
#include <cstdint>
#include <initializer_list>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "kernels/ops.h"
#include "kernels/reference/reference_ops.h"
#include "tests/cuda_test_util.h"
#include "tests/kernels/op_case.h"

namespace voxmamba::kernels {
namespace {

using op_cases::input;
using op_cases::OpCase;
using op_cases::param;

constexpr int kDrawsPerFamily = 10;
constexpr std::int64_t kMostMultiplyAdds = 20'000'000;  // a draw's reference work, tens of ms

// A seeded source of small integers, the same on every platform.
class Draw {
 public:
  explicit Draw(std::uint64_t seed) : rng_(seed) {}
  int between(int low, int high) {
    return low + static_cast<int>(rng_() % static_cast<std::uint64_t>(high - low + 1));
  }
  bool chance(int percent) { return between(1, 100) <= percent; }
  template <typename T>
  T pick(std::initializer_list<T> values) {
    return values.begin()[between(0, static_cast<int>(values.size()) - 1)];
  }
  std::uint64_t seed() { return rng_() % 1'000'000; }

 private:
  std::mt19937_64 rng_;
};

std::string shape_name(const Shape& shape) {
  std::string name;
  for (std::size_t i = 0; i < shape.size(); ++i) name += (i ? "x" : "") + std::to_string(shape[i]);
  return name;
}

std::int64_t voxels_of(const Shape& shape) {
  std::int64_t voxels = 1;
  for (std::size_t i = 0; i + 1 < shape.size(); ++i) voxels *= shape[i];
  return voxels;
}

Shape volume_shape(Draw& draw, int most_n, int most_side, std::int64_t channels) {
  return {draw.between(1, most_n), draw.between(1, most_side), draw.between(1, most_side),
          draw.between(1, most_side), channels};
}

// Dense, grouped and depthwise convs, and the network's own shapes (3^3 into 16 or 48
// channels, the k7 s2 stem, the k2 s2 down-sampling), redrawn until the output has a voxel
// and the work fits.
OpCase conv3d_draw(Draw& draw, int index) {
  for (;;) {
    ConvParams p;
    std::int64_t cin = 0, cout = 0;
    switch (draw.between(0, 2)) {
      case 0:  // general
        cin = draw.pick<std::int64_t>({1, 2, 3, 4, 5, 6, 8, 12, 16});
        cout = draw.pick<std::int64_t>({1, 2, 3, 5, 7, 8, 16, 24});
        p.kernel = draw.pick({1, 2, 3, 4, 5, 7});
        p.stride = draw.pick({1, 1, 2, 3});
        p.dilation = p.kernel > 1 ? draw.pick({1, 1, 2, 3}) : 1;
        p.padding = draw.between(0, p.dilation * (p.kernel - 1) / 2 + 1);
        p.groups = draw.pick({1, 1, 2, 3, 4});
        break;
      case 1:  // depthwise
        cin = cout = draw.pick<std::int64_t>({1, 2, 3, 5, 8, 16, 24, 48});
        p.groups = static_cast<int>(cin);
        p.kernel = draw.pick({2, 3, 5, 7});
        p.stride = draw.pick({1, 1, 2});
        p.dilation = draw.pick({1, 1, 2, 3});
        p.padding = draw.between(0, p.dilation * (p.kernel - 1) / 2 + 1);
        break;
      default: {  // the network's
        const int kind = draw.between(0, 2);
        if (kind == 0) {
          cin = draw.pick<std::int64_t>({8, 16, 32, 48});
          cout = draw.pick<std::int64_t>({16, 48});
          p = {3, 1, 1, 1, 1};
        } else if (kind == 1) {
          cin = draw.pick<std::int64_t>({1, 2, 3});
          cout = draw.pick<std::int64_t>({8, 16, 48});
          p = draw.chance(50) ? ConvParams{7, 2, 3, 1, 1} : ConvParams{3, 1, 1, 1, 1};
        } else {
          cin = draw.pick<std::int64_t>({8, 16, 48});
          cout = 2 * cin;
          p = {2, 2, 0, 1, 1};
        }
      }
    }
    if (cin % p.groups != 0 || cout % p.groups != 0) continue;
    const Shape x_shape = volume_shape(draw, 2, 20, cin);
    const std::int64_t d = conv_output_size(x_shape[1], p), h = conv_output_size(x_shape[2], p),
                       w = conv_output_size(x_shape[3], p);
    if (d < 1 || h < 1 || w < 1) continue;
    const std::int64_t taps = static_cast<std::int64_t>(p.kernel) * p.kernel * p.kernel;
    if (x_shape[0] * d * h * w * taps * (cin / p.groups) * cout > kMostMultiplyAdds) continue;
    const bool bias = draw.chance(50);
    const std::uint64_t seed = draw.seed();
    const std::string name =
        "conv3d_" + std::to_string(index) + "_" + shape_name(x_shape) + "_to_c" + std::to_string(cout) +
        "_k" + std::to_string(p.kernel) + "s" + std::to_string(p.stride) + "p" + std::to_string(p.padding) +
        "d" + std::to_string(p.dilation) + "g" + std::to_string(p.groups) + (bias ? "_bias" : "");
    return {Op::Conv3d, name, [=](bool reference) {
              const Shape w_shape = {taps, cin / p.groups, cout};
              const Tensor x = input(x_shape, seed);
              // Depthwise weights stay float32 in every type (ops.h), GEMM weights do not.
              const Tensor weight =
                  is_depthwise(cin, cout, p) ? param(w_shape, seed + 1) : input(w_shape, seed + 1);
              return CALL(conv3d, x, weight, bias ? param({cout}, seed + 2) : Tensor(), p);
            }};
  }
}

OpCase conv_transpose_draw(Draw& draw, int index) {
  const std::int64_t cin = draw.pick<std::int64_t>({1, 2, 3, 5, 8, 16, 48, 96});
  const std::int64_t cout = draw.pick<std::int64_t>({1, 3, 4, 8, 16, 48});
  const Shape x_shape = volume_shape(draw, 2, 6, cin);
  const bool bias = draw.chance(50);
  const std::int64_t skip_channels = draw.chance(50) ? draw.pick<std::int64_t>({1, 3, 5, 8, 16, 24, 48}) : 0;
  const std::uint64_t seed = draw.seed();
  const std::string name = "conv_transpose3d_" + std::to_string(index) + "_" + shape_name(x_shape) + "_to_c" +
                           std::to_string(cout) + (bias ? "_bias" : "") +
                           (skip_channels ? "_skip_c" + std::to_string(skip_channels) : "");
  return {Op::ConvTranspose3d, name, [=](bool reference) {
            const Tensor x = input(x_shape, seed);
            const Tensor weight = input({cin, 8, cout}, seed + 1);
            const Tensor skip =
                skip_channels
                    ? input({x_shape[0], 2 * x_shape[1], 2 * x_shape[2], 2 * x_shape[3], skip_channels},
                            seed + 3)
                    : Tensor();
            return CALL(conv_transpose3d_k2s2, x, weight, bias ? param({cout}, seed + 2) : Tensor(), skip);
          }};
}

OpCase deform_draw(Draw& draw, int index) {
  for (;;) {
    const std::int64_t c = draw.pick<std::int64_t>({1, 2, 3, 5, 8, 16, 24, 32, 48, 64, 96});
    const int kernel = draw.pick({3, 5, 7}), dilation = draw.pick({1, 2, 3});
    const Shape x_shape = volume_shape(draw, 2, 16, c);
    const std::int64_t taps = static_cast<std::int64_t>(kernel) * kernel * kernel;
    if (voxels_of(x_shape) * taps * 8 * c > kMostMultiplyAdds) continue;
    const float range = draw.pick({0.5f, 1.5f, 3.0f});
    const bool offset_bias = draw.chance(50);
    const std::int64_t padding = draw.pick<std::int64_t>({0, 0, 1, 3, 7});
    const std::uint64_t seed = draw.seed();
    const std::string name = "deform_dwconv3d_" + std::to_string(index) + "_" + shape_name(x_shape) + "_k" +
                             std::to_string(kernel) + "d" + std::to_string(dilation) + "_range" +
                             std::to_string(static_cast<int>(range * 10)) + "_pad" + std::to_string(padding) +
                             (offset_bias ? "_offset_bias" : "");
    return {Op::DeformDepthwiseConv3d, name, [=](bool reference) {
              Shape offset_shape = x_shape;
              offset_shape[4] = 3 * taps + padding;
              const Tensor x = input(x_shape, seed);
              const Tensor offsets = input(offset_shape, seed + 1, -range, range);
              const Tensor shift = offset_bias ? param({3 * taps}, seed + 4, -range, range) : Tensor();
              return CALL(deform_dwconv3d, x, offsets, param({taps, c}, seed + 2), param({c}, seed + 3),
                          kernel, dilation, shift);
            }};
  }
}

// The norms' epilogues: none, LeakyReLU, a residual, and a residual normalised itself.
struct EpilogueDraw {
  bool residual, normalised, leaky;
  std::string name() const {
    return std::string(residual ? (normalised ? "_normalised_residual" : "_residual") : "") +
           (leaky ? "_leaky_relu" : "");
  }
};

EpilogueDraw draw_epilogue(Draw& draw) {
  EpilogueDraw e{draw.chance(50), false, draw.chance(50)};
  e.normalised = e.residual && draw.chance(50);
  return e;
}

NormEpilogue make_epilogue(const EpilogueDraw& e, const Shape& shape, std::uint64_t seed) {
  NormEpilogue epilogue;
  epilogue.leaky_relu = e.leaky;
  epilogue.leaky_slope = 0.01f;
  if (e.residual) epilogue.residual = input(shape, seed, -3, 5);
  if (e.normalised) {
    epilogue.residual_gamma = param({shape.back()}, seed + 1);
    epilogue.residual_beta = param({shape.back()}, seed + 2);
  }
  return epilogue;
}

OpCase instance_norm_draw(Draw& draw, int index) {
  const Shape shape = volume_shape(draw, 3, 20, draw.pick<std::int64_t>({1, 2, 3, 5, 6, 8, 16, 24, 48, 64}));
  const EpilogueDraw e = draw_epilogue(draw);
  const std::uint64_t seed = draw.seed();
  return {Op::InstanceNorm, "instance_norm_" + std::to_string(index) + "_" + shape_name(shape) + e.name(),
          [=](bool reference) {
            const Tensor x = input(shape, seed, -2, 4);
            return CALL(instance_norm, x, param({shape.back()}, seed + 1), param({shape.back()}, seed + 2),
                        1e-5f, make_epilogue(e, shape, seed + 3));
          }};
}

OpCase conv_instance_norm_draw(Draw& draw, int index) {
  for (;;) {
    const std::int64_t cin = draw.pick<std::int64_t>({3, 8, 16, 32, 48}),
                       cout = draw.pick<std::int64_t>({8, 16, 48});
    const Shape x_shape = volume_shape(draw, 3, 20, cin);
    if (voxels_of(x_shape) * 27 * cin * cout > kMostMultiplyAdds) continue;
    Shape y_shape = x_shape;
    y_shape[4] = cout;
    const bool bias = draw.chance(50);
    const EpilogueDraw e = draw_epilogue(draw);
    const std::uint64_t seed = draw.seed();
    const std::string name = "conv3d_instance_norm_" + std::to_string(index) + "_" + shape_name(x_shape) +
                             "_to_c" + std::to_string(cout) + (bias ? "_bias" : "") + e.name();
    return {Op::Conv3dInstanceNorm, name, [=](bool reference) {
              const Tensor x = input(x_shape, seed, -1, 3);
              // A bias far from zero moves the channels' means off zero, which the norm removes.
              const Tensor b = bias ? param({cout}, seed + 2, 20, 30) : Tensor();
              return CALL(conv3d_instance_norm, x, input({27, cin, cout}, seed + 1), b, {3, 1, 1, 1, 1},
                          param({cout}, seed + 3), param({cout}, seed + 4), 1e-5f,
                          make_epilogue(e, y_shape, seed + 5));
            }};
  }
}

OpCase layer_norm_draw(Draw& draw, int index) {
  const std::int64_t c = draw.pick<std::int64_t>({1, 2, 3, 7, 8, 16, 24, 48, 96, 192, 384});
  Shape shape;
  const int rank = draw.between(2, 5);
  for (int i = 0; i + 1 < rank; ++i) shape.push_back(draw.between(1, 9));
  shape.push_back(c);
  const std::uint64_t seed = draw.seed();
  return {
      Op::LayerNorm, "layer_norm_" + std::to_string(index) + "_" + shape_name(shape), [=](bool reference) {
        return CALL(layer_norm, input(shape, seed, -3, 5), param({c}, seed + 1), param({c}, seed + 2), 1e-5f);
      }};
}

OpCase linear_draw(Draw& draw, int index) {
  for (;;) {
    const std::int64_t in = draw.pick<std::int64_t>({1, 2, 3, 4, 5, 8, 12, 16, 48, 96, 192});
    const std::int64_t out = draw.pick<std::int64_t>({1, 2, 3, 4, 5, 8, 16, 24, 35, 48, 96, 384, 1032});
    const std::int64_t rows = draw.pick<std::int64_t>({1, 7, 16, 33, 130, 517, 2003, 5001});
    if (rows * in * out > kMostMultiplyAdds) continue;
    const bool bias = draw.chance(50), float32_output = draw.chance(25);
    const std::uint64_t seed = draw.seed();
    const std::string name = "linear_" + std::to_string(index) + "_rows" + std::to_string(rows) + "_" +
                             std::to_string(in) + "_to_" + std::to_string(out) + (bias ? "_bias" : "") +
                             (float32_output ? "_float32_output" : "");
    OpCase c{Op::Linear, name, [=](bool reference) {
               const Tensor x = input({1, rows, in}, seed), weight = input({in, out}, seed + 1);
               const Tensor b = bias ? param({out}, seed + 2) : Tensor();
               return float32_output ? CALL(linear, x, weight, b, DType::f32) : CALL(linear, x, weight, b);
             }};
    if (float32_output) {  // no output rounding: the 16-bit inputs are exact
      c.bf16_tolerance = 1e-4;
      c.float32_output = true;
    }
    return c;
  }
}

// A volume for the sequence ops, its tokens in one of the three orders.
struct SequenceDraw {
  VolumeShape volume;
  TokenOrder order;
  std::int64_t batch;
  std::string name() const {
    return std::to_string(batch) + "x" + std::to_string(volume.depth) + "x" + std::to_string(volume.height) +
           "x" + std::to_string(volume.width) + "_" + token_order_name(order);
  }
};

SequenceDraw draw_sequence(Draw& draw, int most_side) {
  return {{draw.between(1, most_side), draw.between(1, most_side), draw.between(1, most_side)},
          kTokenOrders[static_cast<std::size_t>(draw.between(0, 2))],
          draw.between(1, 2)};
}

OpCase tokens_draw(Draw& draw, int index) {
  const SequenceDraw s = draw_sequence(draw, 9);
  const std::int64_t features = draw.pick<std::int64_t>({1, 3, 8, 16});
  const bool restore = index % 2 == 1;
  const std::uint64_t seed = draw.seed();
  const std::string name = std::string(restore ? "restore_tokens_" : "reorder_tokens_") +
                           std::to_string(index) + "_" + s.name() + "_f" + std::to_string(features);
  return {restore ? Op::RestoreTokens : Op::ReorderTokens, name, [=](bool reference) {
            const Tensor x = input({s.batch, s.volume.tokens(), features}, seed);
            return restore ? CALL(restore_tokens, x, s.order, s.volume)
                           : CALL(reorder_tokens, x, s.order, s.volume);
          }};
}

OpCase causal_conv1d_draw(Draw& draw, int index) {
  const SequenceDraw s = draw_sequence(draw, 9);
  const std::int64_t e = draw.pick<std::int64_t>({1, 3, 6, 8, 16, 32, 96});
  const std::int64_t width = draw.between(1, 4);
  const bool silu = draw.chance(50);
  const std::uint64_t seed = draw.seed();
  const std::string name = "causal_conv1d_" + std::to_string(index) + "_" + s.name() + "_e" +
                           std::to_string(e) + "_width" + std::to_string(width) + (silu ? "_silu" : "");
  return {Op::CausalConv1d, name, [=](bool reference) {
            return CALL(causal_conv1d, input({s.batch, s.volume.tokens(), e}, seed),
                        param({width, e}, seed + 1), param({e}, seed + 2), s.order, s.volume, silu);
          }};
}

OpCase selective_scan_draw(Draw& draw, int index) {
  const SequenceDraw s = draw_sequence(draw, 9);
  const std::int64_t e = draw.pick<std::int64_t>({1, 3, 5, 8, 16, 32, 64});
  const std::int64_t states = draw.pick<std::int64_t>({1, 2, 3, 4, 8, 16, 16});
  const bool sum = draw.chance(40), gate = draw.chance(40);
  // Half the draws in the projected form (ops.h): x_proj's rows with dt_in's rank, padding,
  // then B and C.
  const bool projected = draw.chance(50);
  const std::int64_t rank = projected ? draw.between(1, 12) : 0, padding = projected ? draw.between(0, 8) : 0;
  const std::uint64_t seed = draw.seed();
  const std::int64_t L = s.volume.tokens();
  const std::string name =
      "selective_scan_" + std::to_string(index) + "_" + s.name() + "_e" + std::to_string(e) + "_s" +
      std::to_string(states) + (sum ? "_sum" : "") + (gate ? "_gate" : "") +
      (projected ? "_projected_rank" + std::to_string(rank) + "_pad" + std::to_string(padding) : "");
  // Rounding grows with the sequence, and the GPU composes chunk states in another order than
  // the reference (as ops_test.cpp's long scans).
  return {Op::SelectiveScan, name,
          [=](bool reference) {
            ScanInputs in;
            in.u = input({s.batch, L, e}, seed);
            if (projected) {
              in.projected = input({s.batch, L, rank + padding + 2 * states}, seed + 1);
              in.dt_weight = param({rank, e}, seed + 4);
            } else {
              in.delta = input({s.batch, L, e}, seed + 1, -4, 1);
              in.B = input({s.batch, L, states}, seed + 4);
              in.C = input({s.batch, L, states}, seed + 5);
            }
            in.delta_bias = param({e}, seed + 2, -2, 0);
            in.A = param({e, states}, seed + 3, -2, -0.01f);
            in.D = param({e}, seed + 6);
            if (sum) in.sum = input({s.batch, L, e}, seed + 7, -2, 2);
            if (gate) in.gate = input({s.batch, L, e}, seed + 8, -4, 4);
            return CALL(selective_scan, in, s.order, s.volume);
          },
          L > 256 ? 5e-5 : 1e-5};
}

Shape small_shape(Draw& draw, int low_rank, int high_rank, int most_side) {
  Shape shape;
  const int rank = draw.between(low_rank, high_rank);
  for (int i = 0; i < rank; ++i) shape.push_back(draw.between(1, most_side));
  return shape;
}

// Unary activations, add and mul in turn, over their input ranges (softplus across its
// threshold of 20).
OpCase elementwise_draw(Draw& draw, int index) {
  const Shape shape = small_shape(draw, 1, 5, 9);
  constexpr Op kOps[] = {Op::Gelu, Op::Silu, Op::LeakyRelu, Op::Softplus, Op::Add, Op::Mul};
  const Op op = kOps[index % 6];  // each op in turn, its shape drawn
  const std::uint64_t seed = draw.seed();
  const float range = op == Op::Softplus ? 30.0f : 6.0f;
  return {op, std::string(op_name(op)) + "_" + std::to_string(index) + "_" + shape_name(shape),
          [=](bool reference) {
            const Tensor x = input(shape, seed, -range, range);
            switch (op) {
              case Op::Gelu:
                return CALL(gelu, x);
              case Op::Silu:
                return CALL(silu, x);
              case Op::LeakyRelu:
                return CALL(leaky_relu, x, 0.01f);
              case Op::Softplus:
                return CALL(softplus, x);
              case Op::Add:
                return CALL(add, x, input(shape, seed + 1, -range, range));
              default:
                return CALL(mul, x, input(shape, seed + 1, -range, range));
            }
          }};
}

OpCase concat_draw(Draw& draw, int index) {
  Shape a = small_shape(draw, 1, 4, 7);
  a.push_back(draw.pick<std::int64_t>({1, 2, 3, 6, 8, 16, 48}));
  Shape b = a;
  b.back() = draw.pick<std::int64_t>({1, 2, 5, 8, 16, 48});
  const std::uint64_t seed = draw.seed();
  return {Op::ConcatChannels,
          "concat_channels_" + std::to_string(index) + "_" + shape_name(a) + "_c" + std::to_string(b.back()),
          [=](bool reference) { return CALL(concat_channels, input(a, seed), input(b, seed + 1)); }};
}

// Softmax and argmax in turn, over the last axis (ties are impossible with continuous random values;
// the labels are compared as floats).
OpCase reduction_draw(Draw& draw, int index) {
  const Shape shape = small_shape(draw, 1, 4, 9);
  const bool softmax_op = index % 2 == 0;
  const std::uint64_t seed = draw.seed();
  return {softmax_op ? Op::Softmax : Op::Argmax,
          std::string(softmax_op ? "softmax_" : "argmax_") + std::to_string(index) + "_" + shape_name(shape),
          [=](bool reference) {
            const Tensor x = input(shape, seed, -30, 30);
            if (softmax_op) return CALL(softmax, x);
            const Tensor labels = CALL(argmax, x).to(Device::cpu());
            Tensor as_float = Tensor::empty(labels.shape());
            for (std::int64_t i = 0; i < labels.numel(); ++i) {
              as_float.data<float>()[i] = static_cast<float>(labels.data<std::int32_t>()[i]);
            }
            return as_float;
          }};
}

// Mirroring flips and casts to bfloat16 or float16 and back, in turn: both must be exact.
OpCase exact_draw(Draw& draw, int index) {
  const bool flip_op = index % 2 == 0;
  const std::uint64_t seed = draw.seed();
  if (flip_op) {
    const Shape shape = small_shape(draw, 4, 5, 6);
    const int mask = draw.between(0, 7);
    return {Op::Flip,
            "flip_" + std::to_string(index) + "_" + shape_name(shape) + "_mask" + std::to_string(mask),
            [=](bool reference) { return CALL(flip, input(shape, seed), mask); }, 0.0, 0.0};
  }
  const Shape shape = small_shape(draw, 1, 4, 9);
  const DType type = draw.chance(50) ? DType::bf16 : DType::f16;
  const float range = draw.pick({1e-4f, 1.0f, 6e4f});
  return {Op::Cast,
          std::string("cast_") + dtype_name(type) + "_" + std::to_string(index) + "_" + shape_name(shape) +
              "_range" + std::to_string(static_cast<int>(range)),
          [=](bool reference) {
            const Tensor x = input(shape, seed, -range, range);
            return CALL(cast, CALL(cast, x, type), DType::f32);
          },
          0.0, 0.0};
}

using Family = OpCase (*)(Draw&, int);

std::vector<OpCase> drawn_cases() {
  const std::vector<Family> families = {
      conv3d_draw,      conv_transpose_draw, deform_draw,    instance_norm_draw, conv_instance_norm_draw,
      layer_norm_draw,  linear_draw,         tokens_draw,    causal_conv1d_draw, selective_scan_draw,
      elementwise_draw, concat_draw,         reduction_draw, exact_draw};
  std::vector<OpCase> cases;
  for (std::size_t f = 0; f < families.size(); ++f) {
    Draw draw(0x5eed0000 + f);
    for (int i = 0; i < kDrawsPerFamily; ++i) cases.push_back(families[f](draw, i));
  }
  return cases;
}

class RandomShapesTest : public op_cases::OpCaseTest {};

VOXMAMBA_OP_CASE_TESTS(RandomShapesTest)

INSTANTIATE_TEST_SUITE_P(Drawn, RandomShapesTest, ::testing::ValuesIn(drawn_cases()),
                         [](const ::testing::TestParamInfo<OpCase>& param_info) {
                           return param_info.param.name;
                         });

TEST(RandomShapes, EveryOpIsDrawn) { op_cases::expect_every_op_has_a_case(drawn_cases()); }

TEST(RandomShapes, DrawsRepeatAndHaveDistinctNames) {
  const std::vector<OpCase> first = drawn_cases(), second = drawn_cases();
  ASSERT_EQ(first.size(), second.size());
  std::set<std::string> names;
  for (std::size_t i = 0; i < first.size(); ++i) {
    EXPECT_EQ(first[i].name, second[i].name);
    EXPECT_TRUE(names.insert(first[i].name).second) << "two draws named " << first[i].name;
  }
}

}  // namespace
}  // namespace voxmamba::kernels
