// Every op of kernels/ops.h, through the public dispatch (CPU, and the GPU in float32,
// bfloat16 and float16), against its plain-loop definition in kernels/reference, on seeded
// random inputs with hand-picked odd sizes, strides, dilations, groups and padding edges, and
// the shapes of the GPU's special paths (op_case.h is the harness; random_shapes_test.cpp
// draws shapes instead). A new Op without a case fails EveryOpHasACase.
#include "kernels/ops.h"

#include <array>
#include <functional>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/reference/reference_ops.h"
#include "tests/cuda_test_util.h"
#include "tests/kernels/op_case.h"
#include "tests/test_util.h"

namespace voxmamba::kernels {
namespace {

using op_cases::input;
using op_cases::OpCase;
using op_cases::param;

OpCase conv_case(const std::string& name, Shape x_shape, int cout, ConvParams p, bool bias) {
  return {Op::Conv3d, name, [=](bool reference) {
            const std::int64_t cin = x_shape[4];
            const bool depthwise = is_depthwise(cin, cout, p);  // float32 weights, like every non-GEMM one
            const Shape w_shape = {static_cast<std::int64_t>(p.kernel) * p.kernel * p.kernel, cin / p.groups, cout};
            const Tensor x = input(x_shape, 1);
            const Tensor w = depthwise ? param(w_shape, 2) : input(w_shape, 2);
            const Tensor b = bias ? param({cout}, 3) : Tensor();
            return CALL(conv3d, x, w, b, p);
          }};
}

// padding: extra offset channels per voxel beyond 3 K^3, which the op must ignore (the model
// pads the offset head's rows to a multiple of 8 channels).
OpCase deform_case(const std::string& name, Shape x_shape, int kernel, int dilation, float offset_range,
                   bool offset_bias = false, std::int64_t padding = 0) {
  return {Op::DeformDepthwiseConv3d, name, [=](bool reference) {
            const std::int64_t taps = static_cast<std::int64_t>(kernel) * kernel * kernel;
            Shape offset_shape = x_shape;
            offset_shape[4] = 3 * taps + padding;
            const Tensor x = input(x_shape, 4);
            const Tensor offsets = input(offset_shape, 5, -offset_range, offset_range);
            const Tensor w = param({taps, x_shape[4]}, 6);
            const Tensor b = param({x_shape[4]}, 7);
            const Tensor shift = offset_bias ? param({3 * taps}, 50, -offset_range, offset_range) : Tensor();
            return CALL(deform_dwconv3d, x, offsets, w, b, kernel, dilation, shift);
          }};
}

// `rows` rows mapped from `in` to `out` channels, named prefix_IN_to_OUT_rowsROWS[_bias]; the
// input, weight and bias come from seeds `seed`, `seed + 1` and `seed + 2`.
OpCase linear_case(const std::string& prefix, std::int64_t rows, std::int64_t in, std::int64_t out,
                   bool with_bias, std::uint64_t seed) {
  const std::string name = prefix + "_" + std::to_string(in) + "_to_" + std::to_string(out) + "_rows" +
                           std::to_string(rows) + (with_bias ? "_bias" : "");
  return {Op::Linear, name, [=](bool reference) {
            return CALL(linear, input({1, rows, in}, seed), input({in, out}, seed + 1),
                        with_bias ? param({out}, seed + 2) : Tensor());
          }};
}

OpCase unary_case(Op op, const std::string& name, std::function<Tensor(const Tensor&, bool)> f, float range) {
  return {op, name, [=](bool reference) { return f(input({3, 5, 7, 11}, 8, -range, range), reference); }};
}

std::vector<OpCase> all_cases() {
  std::vector<OpCase> cases;
  // Dense, strided, dilated, grouped and depthwise convs, with padding edges and odd sizes.
  cases.push_back(conv_case("conv3_pad1", {2, 5, 7, 6, 3}, 5, {3, 1, 1, 1, 1}, false));
  cases.push_back(conv_case("stem_k7_s2_p3", {1, 9, 8, 7, 1}, 4, {7, 2, 3, 1, 1}, true));
  cases.push_back(conv_case("down_k2_s2", {2, 4, 6, 8, 5}, 7, {2, 2, 0, 1, 1}, true));
  cases.push_back(conv_case("k3_dilation2_pad2", {1, 7, 6, 9, 4}, 3, {3, 1, 2, 2, 1}, true));
  cases.push_back(conv_case("k3_stride2_nopad_odd", {1, 7, 5, 9, 2}, 3, {3, 2, 0, 1, 1}, true));
  cases.push_back(conv_case("grouped_2", {1, 5, 4, 3, 4}, 6, {3, 1, 1, 1, 2}, true));
  cases.push_back(conv_case("pointwise", {2, 3, 4, 5, 6}, 7, {1, 1, 0, 1, 1}, true));
  // Narrow inputs with output channels in multiples of 8, which 16-bit types run on tensor
  // cores in tiles of 64 output voxels along w: the stem's shape with two tiles a row (the
  // second partial), the first decoder conv's with two samples, and three input channels
  // with dilation (81 taps, padded to 96).
  cases.push_back(conv_case("stem_k7_s2_p3_c48", {1, 5, 6, 150, 1}, 48, {7, 2, 3, 1, 1}, true));
  cases.push_back(conv_case("k3_p1_c1_to_c48", {2, 4, 5, 70, 1}, 48, {3, 1, 1, 1, 1}, false));
  cases.push_back(conv_case("k3_d2_c3_to_c16", {1, 6, 5, 9, 3}, 16, {3, 1, 2, 2, 1}, true));
  // In 16-bit types on the GPU, cuDNN (channels in multiples of 8), whose filter layout is
  // transposed in 32 x 32 tiles: here more than one on both channel axes, the last ones partial.
  cases.push_back(conv_case("k3_c40_to_c48", {1, 4, 5, 3, 40}, 48, {3, 1, 1, 1, 1}, true));
  // 3^3 convs into 48 channels, which 16-bit types run on tensor cores with the weight resident
  // in shared memory, in tiles of 3 x 8 x 16 output voxels: partial tiles on every axis (with
  // bias); two samples in whole tiles, 54 reduction steps (an even count; 48 channels take 81);
  // and 100 samples of 17 x 1 x 2 voxels, 600 tiles (the last of each 6 along d partial), more
  // than a GPU has multiprocessors, so that each block walks several tiles, restaging its input
  // region for each.
  cases.push_back(conv_case("k3_p1_c48_to_c48_partial_tiles", {1, 4, 9, 19, 48}, 48, {3, 1, 1, 1, 1}, true));
  cases.push_back(conv_case("k3_p1_c32_to_c48_two_samples", {2, 3, 8, 16, 32}, 48, {3, 1, 1, 1, 1}, false));
  cases.push_back(conv_case("k3_p1_c16_to_c48_many_tiles", {100, 17, 1, 2, 16}, 48, {3, 1, 1, 1, 1}, false));
  // One input channel into vectors of output channels (the direct narrow-input kernel).
  cases.push_back(conv_case("narrow_input_k3_c16", {1, 6, 5, 7, 1}, 16, {3, 1, 1, 1, 1}, false));
  cases.push_back(conv_case("narrow_input_k7_s2_c8", {2, 9, 6, 8, 2}, 8, {7, 2, 3, 1, 1}, true));
  // The stem's shape (k7 s2, one channel into 48, bias), a dilated k3 with three input
  // channels, k7 with four input channels into 16 (on the GPU in 16-bit types 88 KB of
  // weights a block, beyond the default 48 KB of shared memory) and an even kernel size, which
  // the GPU's kernel walks with run-time loop bounds.
  cases.push_back(conv_case("narrow_input_k7_s2_c48_stem", {1, 10, 12, 14, 1}, 48, {7, 2, 3, 1, 1}, true));
  cases.push_back(conv_case("narrow_input_k3_d2_c32", {2, 7, 6, 9, 3}, 32, {3, 1, 2, 2, 1}, true));
  cases.push_back(conv_case("narrow_input_k7_c16_large_shared", {1, 5, 6, 7, 4}, 16, {7, 1, 3, 1, 1}, false));
  cases.push_back(conv_case("narrow_input_k4_s2_runtime_k", {1, 8, 6, 10, 2}, 16, {4, 2, 1, 1, 1}, true));
  cases.push_back(conv_case("depthwise_k5_p2", {2, 6, 5, 7, 5}, 5, {5, 1, 2, 1, 5}, true));
  cases.push_back(conv_case("depthwise_k7_d3_p9", {1, 9, 10, 11, 3}, 3, {7, 1, 9, 3, 3}, true));
  cases.push_back(conv_case("depthwise_size1_axis", {1, 1, 4, 5, 3}, 3, {3, 1, 1, 1, 3}, true));
  // Stride 1, dilation 1 on the GPU: four output voxels a thread along w, here with 16-byte
  // channel vectors and output rows of 7 voxels (a last block of 3).
  cases.push_back(conv_case("depthwise_k3_p1_c16_rows", {2, 5, 6, 7, 16}, 16, {3, 1, 1, 1, 16}, true));
  cases.push_back(conv_case("depthwise_k5_p1_c8_rows", {1, 6, 5, 9, 8}, 8, {5, 1, 1, 1, 8}, false));
  // The GPU unrolls the taps of 3, 5 and 7; other kernel sizes loop (here 2, stride 2, over
  // 16-byte channel vectors in 16-bit types).
  cases.push_back(conv_case("depthwise_k2_s2_c8", {1, 6, 4, 5, 8}, 8, {2, 2, 0, 1, 8}, true));

  for (bool bias : {false, true}) {
    cases.push_back({Op::ConvTranspose3d, bias ? "transposed_bias" : "transposed", [=](bool reference) {
                       const Tensor x = input({2, 3, 2, 5, 4}, 9);
                       const Tensor w = input({4, 8, 3}, 10);
                       return CALL(conv_transpose3d_k2s2, x, w, bias ? param({3}, 11) : Tensor());
                     }});
  }
  // 16 output channels: the GPU scatters them in 16-byte vectors.
  cases.push_back({Op::ConvTranspose3d, "transposed_bias_c16", [](bool reference) {
                     const Tensor x = input({1, 3, 4, 5, 8}, 72);
                     const Tensor w = input({8, 8, 16}, 73);
                     return CALL(conv_transpose3d_k2s2, x, w, param({16}, 74));
                   }});
  // The decoder's UpBlock: the skip concatenated after the upsampled channels, written in one
  // pass on the GPU (16-byte vectors for 16 + 24 channels; element by element for 3 + 5, and
  // two samples).
  cases.push_back({Op::ConvTranspose3d, "transposed_bias_c16_then_skip_c24", [](bool reference) {
                     const Tensor x = input({1, 3, 4, 5, 8}, 90);
                     const Tensor w = input({8, 8, 16}, 91);
                     return CALL(conv_transpose3d_k2s2, x, w, param({16}, 92), input({1, 6, 8, 10, 24}, 93));
                   }});
  cases.push_back({Op::ConvTranspose3d, "transposed_c3_then_skip_c5", [](bool reference) {
                     const Tensor x = input({2, 3, 2, 5, 4}, 94);
                     const Tensor w = input({4, 8, 3}, 95);
                     return CALL(conv_transpose3d_k2s2, x, w, Tensor(), input({2, 6, 4, 10, 5}, 96));
                   }});

  cases.push_back(deform_case("deform_k3", {2, 4, 5, 6, 3}, 3, 1, 1.5f));
  cases.push_back(deform_case("deform_k5", {1, 5, 4, 6, 4}, 5, 1, 2.5f));
  cases.push_back(deform_case("deform_k7_d3", {1, 6, 7, 5, 2}, 7, 3, 4.0f));
  cases.push_back(deform_case("deform_size1_axes", {1, 1, 1, 3, 5}, 3, 1, 1.0f));
  cases.push_back(deform_case("deform_k3_offset_bias", {1, 4, 5, 6, 16}, 3, 2, 1.5f, true));
  cases.push_back(deform_case("deform_k3_c24", {1, 3, 5, 4, 24}, 3, 1, 1.5f));
  cases.push_back(deform_case("deform_k5_c32_offset_bias", {2, 5, 4, 6, 32}, 5, 1, 2.5f, true));
  cases.push_back(deform_case("deform_k3_d2_c48_offset_bias", {2, 5, 6, 7, 48}, 3, 2, 2.0f, true));
  // The GPU kernel gives each thread three interleaved 16-byte groups of a voxel's channels
  // (two threads a voxel in 16-bit types, four in float32, as at base stage 0) only where
  // that still leaves 512 threads per multiprocessor: this volume takes that path on GPUs of
  // up to 220 multiprocessors (10 x 11 x 8 tiles of 4^3 voxels, partial along every axis).
  cases.push_back(deform_case("deform_k3_d2_c48_whole_gpu", {1, 39, 41, 31, 48}, 3, 2, 2.0f, true));
  // Four threads a voxel with three groups each, as at base stage 1, four with two, and two
  // with two, again on enough threads for GPUs of up to 220 multiprocessors; in bfloat16 each
  // samples the float16 copy of its input (deform_conv.cu, kHalfSamples).
  cases.push_back(deform_case("deform_k3_c96_whole_gpu", {1, 29, 30, 31, 96}, 3, 1, 1.5f, true, 7));
  cases.push_back(deform_case("deform_k3_d2_c64_whole_gpu", {1, 29, 30, 31, 64}, 3, 2, 2.0f));
  cases.push_back(deform_case("deform_k3_d2_c32_whole_gpu", {1, 39, 41, 31, 32}, 3, 2, 2.0f, true));
  // One group a thread, as at base stage 2 (16^3 x 192 channels: 384 blocks in 16-bit types),
  // which GPUs of 128 to 191 multiprocessors (132 on the H100 SXM and the H200) run at three blocks
  // a multiprocessor (deform_conv.cu's MinBlocks); offsets rows padded as the model pads them.
  cases.push_back(
      deform_case("deform_k3_c192_one_group_a_thread", {1, 16, 16, 16, 192}, 3, 1, 1.5f, true, 7));
  // An axis of size 1 along w, with channel vectors.
  cases.push_back(deform_case("deform_k3_w1_c16", {1, 3, 4, 1, 16}, 3, 1, 1.5f));
  cases.push_back(deform_case("deform_k3_c16_padded_offsets", {1, 4, 5, 6, 16}, 3, 1, 1.5f, true, 3));
  // Offsets rows padded as the model pads them (375 -> 376, 1029 -> 1032 channels).
  cases.push_back(deform_case("deform_k5_c16_offsets_rows_of_8", {1, 5, 6, 7, 16}, 5, 1, 2.5f, false, 1));
  cases.push_back(deform_case("deform_k7_d3_c48_offsets_rows_of_8", {1, 9, 10, 11, 48}, 7, 3, 4.0f, true, 3));
  // Rows of 88 (81 + 7) offsets with 5 channels: float16 reads them eight taps at a time on
  // the GPU, here with one channel a thread.
  cases.push_back(deform_case("deform_k3_c5_offsets_rows_of_8", {1, 4, 5, 6, 5}, 3, 1, 1.5f, true, 7));

  cases.push_back({Op::LayerNorm, "layer_norm_c7", [](bool reference) {
                     return CALL(layer_norm, input({2, 3, 4, 5, 7}, 12, -3, 5), param({7}, 13),
                                 param({7}, 14), 1e-5f);
                   }});
  cases.push_back({Op::LayerNorm, "layer_norm_c96", [](bool reference) {
                     return CALL(layer_norm, input({1, 2, 3, 4, 96}, 15), param({96}, 16),
                                 param({96}, 17), 1e-5f);
                   }});
  // The GPU's layouts: 8 threads a row (48 channels in 16-bit types), 2 (16 channels), and a
  // warp a row, one element a thread, when 384 16-bit channels exceed 32 vectors.
  for (std::int64_t c : {48, 16, 384}) {
    cases.push_back({Op::LayerNorm, "layer_norm_c" + std::to_string(c) + "_rows", [=](bool reference) {
                       return CALL(layer_norm, input({1, 3, 5, 7, c}, 75, -3, 5), param({c}, 76),
                                   param({c}, 77), 1e-5f);
                     }});
  }
  cases.push_back({Op::InstanceNorm, "instance_norm", [](bool reference) {
                     return CALL(instance_norm, input({2, 5, 4, 3, 6}, 18, -2, 4), param({6}, 19),
                                 param({6}, 20), 1e-5f);
                   }});
  cases.push_back({Op::InstanceNorm, "instance_norm_residual_leaky_relu", [](bool reference) {
                     const Tensor x = input({2, 5, 4, 3, 6}, 48, -2, 4);
                     NormEpilogue epilogue{input({2, 5, 4, 3, 6}, 49), true, 0.2f};
                     return CALL(instance_norm, x, param({6}, 19), param({6}, 20), 1e-5f, epilogue);
                   }});
  // Channel vectors of 16 bytes, several blocks of voxels per sample, two samples.
  cases.push_back({Op::InstanceNorm, "instance_norm_c48_residual_leaky_relu", [](bool reference) {
                     const Tensor x = input({2, 12, 11, 13, 48}, 50, -2, 4);
                     NormEpilogue epilogue{input({2, 12, 11, 13, 48}, 51), true, 0.01f};
                     return CALL(instance_norm, x, param({48}, 52), param({48}, 53), 1e-5f, epilogue);
                   }});
  // The residual normalised with its own statistics and affine (the decoder's skip): channel
  // vectors of 16 bytes over two samples, with LeakyReLU; and 6 channels (one a vector) with a
  // residual whose mean is far from zero, which its norm must remove, without the activation.
  cases.push_back({Op::InstanceNorm, "instance_norm_c48_normalised_residual_leaky_relu", [](bool reference) {
                     const Tensor x = input({2, 12, 11, 13, 48}, 90, -2, 4);
                     NormEpilogue epilogue{input({2, 12, 11, 13, 48}, 91, -3, 5), true, 0.01f,
                                           param({48}, 92), param({48}, 93)};
                     return CALL(instance_norm, x, param({48}, 94), param({48}, 95), 1e-5f, epilogue);
                   }});
  cases.push_back({Op::InstanceNorm, "instance_norm_normalised_residual_offset", [](bool reference) {
                     const Tensor x = input({2, 5, 4, 3, 6}, 96, -2, 4);
                     NormEpilogue epilogue{input({2, 5, 4, 3, 6}, 97, 6, 9), false, 0.01f, param({6}, 98),
                                           param({6}, 99)};
                     return CALL(instance_norm, x, param({6}, 19), param({6}, 20), 1e-5f, epilogue);
                   }});
  // Enough voxels for the GPU to split each channel's sums into more strips (36 in 16-bit
  // types, 72 in float32) than a warp has lanes, the sizes of a 64^3 stage.
  cases.push_back({Op::InstanceNorm, "instance_norm_many_splits", [](bool reference) {
                     return CALL(instance_norm, input({1, 64, 96, 96, 8}, 78, -2, 4), param({8}, 79),
                                 param({8}, 80), 1e-5f);
                   }});
  // A 3^3 conv and the instance norm of its output. In 16-bit types on the GPU, 48 output
  // channels take the resident-weight conv, which gathers the norm's statistics as it writes:
  // partial tiles on every axis and two samples, with a bias that moves the channels' means
  // off zero and a normalised residual; and 100 samples of 600 tiles in all, so that each
  // block walks tiles of several samples and hands on each one's statistics. Other shapes and
  // float32 run the conv and the norm apart.
  cases.push_back({Op::Conv3dInstanceNorm, "conv3d_instance_norm_c48_partial_tiles", [](bool reference) {
                     const Tensor x = input({2, 4, 9, 19, 48}, 110, -1, 3);
                     NormEpilogue epilogue{input({2, 4, 9, 19, 48}, 111, -3, 5), true, 0.01f,
                                           param({48}, 112), param({48}, 113)};
                     return CALL(conv3d_instance_norm, x, input({27, 48, 48}, 114), param({48}, 115, 20, 30),
                                 {3, 1, 1, 1, 1}, param({48}, 116), param({48}, 117), 1e-5f, epilogue);
                   }});
  cases.push_back(
      {Op::Conv3dInstanceNorm, "conv3d_instance_norm_c16_to_c48_many_samples", [](bool reference) {
         const Tensor x = input({100, 17, 1, 2, 16}, 118);
         return CALL(conv3d_instance_norm, x, input({27, 16, 48}, 119), Tensor(), {3, 1, 1, 1, 1},
                     param({48}, 120), param({48}, 121), 1e-5f, NormEpilogue{Tensor(), true, 0.01f});
       }});
  cases.push_back({Op::Conv3dInstanceNorm, "conv3d_instance_norm_c8_to_c16", [](bool reference) {
                     return CALL(conv3d_instance_norm, input({1, 5, 6, 7, 8}, 122), input({27, 8, 16}, 123),
                                 param({16}, 124), {3, 1, 1, 1, 1}, param({16}, 125), param({16}, 126),
                                 1e-5f);
                   }});
  cases.push_back({Op::InstanceNorm, "instance_norm_one_voxel", [](bool reference) {
                     return CALL(instance_norm, input({2, 1, 1, 1, 4}, 21), param({4}, 22),
                                 param({4}, 23), 1e-5f);
                   }});

  cases.push_back(unary_case(Op::Gelu, "gelu", [](const Tensor& x, bool reference) { return CALL(gelu, x); }, 6));
  cases.push_back(unary_case(Op::Silu, "silu", [](const Tensor& x, bool reference) { return CALL(silu, x); }, 6));
  cases.push_back(unary_case(
      Op::LeakyRelu, "leaky_relu", [](const Tensor& x, bool reference) { return CALL(leaky_relu, x, 0.01f); }, 3));
  cases.push_back(unary_case(
      Op::Softplus, "softplus_across_threshold", [](const Tensor& x, bool reference) { return CALL(softplus, x); }, 30));

  for (bool bias : {false, true}) {
    cases.push_back({Op::Linear, bias ? "linear_bias" : "linear", [=](bool reference) {
                       return CALL(linear, input({3, 17, 13}, 24), input({13, 11}, 25),
                                   bias ? param({11}, 26) : Tensor());
                     }});
  }

  cases.push_back({Op::Linear, "linear_bias_float32_output", [](bool reference) {
                     return CALL(linear, input({3, 17, 13}, 24), input({13, 11}, 25), param({11}, 26), DType::f32);
                   },
                   2e-5, 1e-4, true});  // no output rounding: the bfloat16 inputs are exact

  // Fewer than 32 outputs, on cuBLAS (measured faster there than a kernel of our own): a Mamba
  // B projection.
  cases.push_back({Op::Linear, "linear_narrow_96_to_16", [](bool reference) {
                     return CALL(linear, input({2, 37, 96}, 61), input({96, 16}, 62), Tensor());
                   }});
  // The network's small shapes (K 48 or 96 into N 8, 16, 48 or 96), with row counts that
  // leave partial 16-row tiles, and one of 70,001 rows.
  const std::vector<std::array<std::int64_t, 4>> small_linears = {
      {315, 48, 48, 1}, {66, 96, 96, 1}, {120, 48, 96, 0}, {130, 96, 8, 1}, {70001, 48, 16, 0}};
  for (const auto& [rows, in, out, with_bias] : small_linears) {
    cases.push_back(linear_case("linear_small", rows, in, out, with_bias != 0, 81));
  }
  // The offset heads' wide maps without a bias (48 into 1032 offsets, 96 into 384), which
  // 16-bit types run on the fastest of cuBLASLt's algorithms, timed at the first call.
  const std::vector<std::array<std::int64_t, 4>> wide_linears = {{2003, 48, 1032, 0}, {517, 96, 384, 0}};
  for (const auto& [rows, in, out, with_bias] : wide_linears) {
    cases.push_back(linear_case("linear_wide", rows, in, out, with_bias != 0, 91));
  }
  // A segmentation head writing float32 logits.
  cases.push_back({Op::Linear, "linear_head_48_to_3_float32_output", [](bool reference) {
                     return CALL(linear, input({1, 5, 6, 7, 48}, 63), input({48, 3}, 64), param({3}, 65), DType::f32);
                   },
                   2e-5, 1e-4, true});
  // At most 4 outputs or 4 inputs: the GPU's own kernels (narrow_linear.cuh) where the rows
  // allow 16-byte vectors, cuBLAS where they do not (12 inputs in 16-bit types, 6 outputs
  // from 2 inputs) and beyond (5 outputs); one input channel, as in enc0's skip.
  const std::vector<std::array<std::int64_t, 4>> narrow_linears = {
      {1001, 48, 4, 1}, {77, 16, 1, 0}, {45, 12, 2, 1}, {50, 8, 5, 0},
      {1003, 1, 48, 1}, {91, 3, 16, 0}, {64, 4, 24, 1}, {35, 2, 6, 1}};
  for (const auto& [rows, in, out, with_bias] : narrow_linears) {
    cases.push_back(linear_case("linear_narrow", rows, in, out, with_bias != 0, 84));
  }
  cases.push_back(
      {Op::Linear, "linear_narrow_1_to_8_float32_output",
       [](bool reference) {
         return CALL(linear, input({2, 3, 4, 5, 1}, 87), input({1, 8}, 88), param({8}, 89), DType::f32);
       },
       2e-5, 1e-4, true});

  // A residual added by the map itself (the encoder blocks' skip connections): the blocks'
  // shapes (48 -> 48 with a bias, as a D-LKA block's proj2 at stage 0; 96 -> 96 without, as a
  // Mamba block's out_proj at stage 1), odd sizes that the GPU's fused matmul may decline, and
  // a 16-bit product written in float32 onto a float32 residual.
  const std::vector<std::array<std::int64_t, 4>> residual_linears = {
      {315, 48, 48, 1}, {66, 96, 96, 0}, {17, 13, 11, 1}, {130, 96, 8, 0}};
  for (const auto& [rows, in, out, with_bias] : residual_linears) {
    const std::string name = "linear_residual_" + std::to_string(in) + "_to_" + std::to_string(out) +
                             "_rows" + std::to_string(rows) + (with_bias ? "_bias" : "");
    cases.push_back({Op::Linear, name, [=](bool reference) {
                       return CALL(linear, input({1, rows, in}, 101), input({in, out}, 102),
                                   with_bias ? param({out}, 103) : Tensor(), std::nullopt,
                                   input({1, rows, out}, 104, -4.0f, 4.0f));
                     }});
  }
  cases.push_back({Op::Linear, "linear_residual_float32_output",
                   [](bool reference) {
                     return CALL(linear, input({2, 37, 48}, 105), input({48, 48}, 106), param({48}, 107),
                                 DType::f32, param({2, 37, 48}, 108, -4.0f, 4.0f));
                   },
                   2e-5, 1e-4, true});

  const VolumeShape volume{3, 4, 5};
  for (TokenOrder order : kTokenOrders) {
    const std::string o = token_order_name(order);
    cases.push_back({Op::ReorderTokens, "reorder_" + o, [=](bool reference) {
                       return CALL(reorder_tokens, input({2, 60, 3}, 27), order, volume);
                     }});
    cases.push_back({Op::RestoreTokens, "restore_" + o, [=](bool reference) {
                       return CALL(restore_tokens, input({2, 60, 3}, 28), order, volume);
                     }});
    for (bool silu_on : {false, true}) {
      cases.push_back({Op::CausalConv1d, "causal_conv1d_" + o + (silu_on ? "_silu" : ""), [=](bool reference) {
                         return CALL(causal_conv1d, input({2, 60, 6}, 29), param({4, 6}, 30),
                                     param({6}, 31), order, volume, silu_on);
                       }});
    }
    cases.push_back({Op::CausalConv1d, "causal_conv1d_" + o + "_silu_e16", [=](bool reference) {
                       return CALL(causal_conv1d, input({2, 60, 16}, 33), param({4, 16}, 34), param({16}, 35),
                                   order, volume, true);
                     }});
    // Widths other than d_conv's 4, and an odd number of tokens on the 16-byte vector path.
    for (const std::int64_t width : {3, 4}) {
      cases.push_back({Op::CausalConv1d,
                       "causal_conv1d_" + o + "_width" + std::to_string(width) + "_35_tokens",
                       [=](bool reference) {
                         return CALL(causal_conv1d, input({2, 35, 16}, 90), param({width, 16}, 91),
                                     param({16}, 92), order, VolumeShape{5, 7, 1}, true);
                       }});
    }
    for (std::int64_t states : {3, 16}) {
      cases.push_back({Op::SelectiveScan, "selective_scan_" + o + "_S" + std::to_string(states),
                       [=](bool reference) {
                         ScanInputs in;
                         in.u = input({2, 60, 5}, 32);
                         in.delta = input({2, 60, 5}, 33, -3, 1);
                         in.delta_bias = param({5}, 34, -2, 0);
                         in.A = param({5, states}, 35, -4, -0.1f);
                         in.B = input({2, 60, states}, 36);
                         in.C = input({2, 60, states}, 37);
                         in.D = param({5}, 38);
                         return CALL(selective_scan, in, order, volume);
                       },
                       1e-5});
    }
  }

  // 4,800 tokens: 300 chunks of 16 on the GPU, so chunk carries cross the carry kernel's 32
  // segments of 10 chunks, the last two of which are empty. float32 tolerance 5e-5: rounding
  // grows with the sequence, and the GPU composes chunk states in another order than the
  // reference.
  for (TokenOrder order : {TokenOrder::Forward, TokenOrder::Slice}) {
    cases.push_back({Op::SelectiveScan, std::string("selective_scan_long_") + token_order_name(order),
                     [=](bool reference) {
                       const VolumeShape long_volume{12, 16, 25};
                       ScanInputs in;
                       in.u = input({1, 4800, 3}, 54);
                       in.delta = input({1, 4800, 3}, 55, -4, 0);
                       in.delta_bias = param({3}, 56, -2, 0);
                       in.A = param({3, 16}, 57, -1, -0.01f);
                       in.B = input({1, 4800, 16}, 58);
                       in.C = input({1, 4800, 16}, 59);
                       in.D = param({3}, 60);
                       return CALL(selective_scan, in, order, long_volume);
                     },
                     5e-5});
  }

  // 32 and 64 channels with 16 states: the GPU's staged scan (tiles of tokens copied to shared
  // memory a warp at a time), with chunks and tiles that the 315 tokens leave partial, and a
  // 4,800-token case whose carries cross the carry kernel's segments.
  for (TokenOrder order : kTokenOrders) {
    for (const bool long_case : {false, true}) {
      // (A lambda cannot capture structured bindings in C++17.)
      const VolumeShape scan_volume = long_case ? VolumeShape{12, 16, 25} : VolumeShape{5, 7, 9};
      const std::int64_t L = scan_volume.tokens(), E = long_case ? 32 : 64;
      cases.push_back({Op::SelectiveScan,
                       std::string("selective_scan_staged") + (long_case ? "_long_" : "_") + token_order_name(order),
                       [=](bool reference) {
                         ScanInputs in;
                         in.u = input({2, L, E}, 61);
                         in.delta = input({2, L, E}, 62, -4, 1);
                         in.delta_bias = param({E}, 63, -2, 0);
                         in.A = param({E, 16}, 64, -2, -0.01f);
                         in.B = input({2, L, 16}, 65);
                         in.C = input({2, L, 16}, 66);
                         in.D = param({E}, 67);
                         return CALL(selective_scan, in, order, scan_volume);
                       },
                       5e-5});
    }
  }

  // The epilogue that sums the orientations and gates the last (ops.h): sum alone, gate alone
  // and both, on the per-channel walk (3 states) and on the staged path (16 states, 32 channels).
  for (const int epilogue : {1, 2, 3}) {
    for (const bool staged : {false, true}) {
      const std::int64_t states = staged ? 16 : 3, E = staged ? 32 : 5;
      const std::string name = std::string(epilogue == 1 ? "sum" : (epilogue == 2 ? "gate" : "sum_gate")) +
                               (staged ? "_staged" : "");
      cases.push_back({Op::SelectiveScan, "selective_scan_" + name,
                       [=](bool reference) {
                         const VolumeShape scan_volume{3, 4, 5};
                         ScanInputs in;
                         in.u = input({2, 60, E}, 68);
                         in.delta = input({2, 60, E}, 69, -3, 1);
                         in.delta_bias = param({E}, 70, -2, 0);
                         in.A = param({E, states}, 71, -4, -0.1f);
                         in.B = input({2, 60, states}, 72);
                         in.C = input({2, 60, states}, 73);
                         in.D = param({E}, 74);
                         if (epilogue & 1) in.sum = input({2, 60, E}, 75, -2, 2);
                         if (epilogue & 2) in.gate = input({2, 60, E}, 76, -4, 4);
                         return CALL(selective_scan, in, TokenOrder::Slice, scan_volume);
                       },
                       1e-5});
    }
  }

  // The projected form (ops.h): x_proj's rows [dt_in | padding | B | C] read in place and
  // delta formed from dt_in and dt_weight by the scan. Per-channel walk: rank 3 padded to 8
  // with 3 states, and rank 2 with no padding; staged (16 states, 64 channels): rank 3 padded
  // to 8 (rows of 40, as at base stage 0) with the sum and gate, and rank 12 padded to 16
  // over 4,800 tokens.
  struct ProjectedScan {
    const char* name;
    std::int64_t E, S, rank, padding;
    VolumeShape volume;
    bool epilogue;
  };
  for (const ProjectedScan& c :
       {ProjectedScan{"walk_rank3_padded", 5, 3, 3, 5, {3, 4, 5}, false},
        ProjectedScan{"walk_rank2_unpadded", 6, 4, 2, 0, {5, 7, 1}, true},
        ProjectedScan{"staged_rank3_padded", 64, 16, 3, 5, {5, 7, 9}, true},
        ProjectedScan{"staged_long_rank12_padded", 32, 16, 12, 4, {12, 16, 25}, false}}) {
    for (TokenOrder order : kTokenOrders) {
      cases.push_back({Op::SelectiveScan,
                       std::string("selective_scan_projected_") + c.name + "_" + token_order_name(order),
                       [=](bool reference) {
                         const std::int64_t L = c.volume.tokens();
                         ScanInputs in;
                         in.u = input({2, L, c.E}, 100);
                         // dt_in around [-1, 1] and weights of R^-1/2 keep delta in the range
                         // of the other cases.
                         in.projected = input({2, L, c.rank + c.padding + 2 * c.S}, 101);
                         in.dt_weight = param({c.rank, c.E}, 102, -1.0f, 1.0f);
                         in.delta_bias = param({c.E}, 103, -2, 0);
                         in.A = param({c.E, c.S}, 104, -2, -0.01f);
                         in.D = param({c.E}, 105);
                         if (c.epilogue) {
                           in.sum = input({2, L, c.E}, 106, -2, 2);
                           in.gate = input({2, L, c.E}, 107, -4, 4);
                         }
                         return CALL(selective_scan, in, order, c.volume);
                       },
                       c.volume.tokens() > 1000 ? 5e-5 : 1e-5});
    }
  }

  cases.push_back({Op::Add, "add", [](bool reference) {
                     return CALL(add, input({4, 9}, 39), input({4, 9}, 40));
                   }});
  cases.push_back({Op::Mul, "mul", [](bool reference) {
                     return CALL(mul, input({4, 9}, 41), input({4, 9}, 42));
                   }});
  // 105 elements: 16-byte vectors on the GPU and a remainder of one element (float32) or one
  // to seven (16-bit types).
  cases.push_back({Op::Add, "add_vectors_and_remainder", [](bool reference) {
                     return CALL(add, input({3, 5, 7}, 70), input({3, 5, 7}, 71));
                   }});
  cases.push_back({Op::ConcatChannels, "concat_channels", [](bool reference) {
                     return CALL(concat_channels, input({2, 3, 2, 2, 5}, 43), input({2, 3, 2, 2, 3}, 44));
                   }});
  // Rows the GPU moves as 16-byte words (16 + 8 channels) and as 4-byte words in 16-bit types (6 + 2).
  cases.push_back({Op::ConcatChannels, "concat_channels_c16_c8", [](bool reference) {
                     return CALL(concat_channels, input({1, 3, 5, 7, 16}, 66), input({1, 3, 5, 7, 8}, 67));
                   }});
  cases.push_back({Op::ConcatChannels, "concat_channels_c6_c2", [](bool reference) {
                     return CALL(concat_channels, input({3, 5, 7, 6}, 68), input({3, 5, 7, 2}, 69));
                   }});
  cases.push_back({Op::Softmax, "softmax", [](bool reference) {
                     return CALL(softmax, input({5, 7, 4}, 45, -30, 30));
                   }});
  cases.push_back({Op::Argmax, "argmax", [](bool reference) {
                     // Compared as floats; ties are impossible with continuous random values.
                     const Tensor labels = CALL(argmax, input({6, 5, 9}, 46)).to(Device::cpu());
                     Tensor as_float = Tensor::empty(labels.shape());
                     for (std::int64_t i = 0; i < labels.numel(); ++i) {
                       as_float.data<float>()[i] = static_cast<float>(labels.data<std::int32_t>()[i]);
                     }
                     return as_float;
                   }});
  cases.push_back({Op::Cast, "cast_round_trip", [](bool reference) {
                     // Wide range: exponents far from 1, so rounding happens at every scale.
                     const Tensor x = input({7, 5, 13}, 47, -3e4f, 3e4f);
                     return CALL(cast, CALL(cast, x, DType::bf16), DType::f32);
                   },
                   0.0, 0.0});
  cases.push_back({Op::Cast, "cast_round_trip_f16", [](bool reference) {
                     // Up to near float16's largest finite value (65504), and subnormals below 2^-14.
                     const Tensor big = input({7, 5, 13}, 66, -6e4f, 6e4f), tiny = input({7, 5, 13}, 67, -1e-4f, 1e-4f);
                     return CALL(concat_channels, CALL(cast, CALL(cast, big, DType::f16), DType::f32),
                                 CALL(cast, CALL(cast, tiny, DType::f16), DType::f32));
                   },
                   0.0, 0.0});
  // The mirroring flip moves values and must be exact: single axes and all three of a 5-D
  // tensor, and a 4-D one; 3 and 7 channels make 16-bit voxels an odd number of words.
  for (int mask : {1, 2, 4, 7}) {
    cases.push_back({Op::Flip, "flip_mask" + std::to_string(mask), [=](bool reference) {
                       return CALL(flip, input({2, 3, 4, 5, 3}, 70 + mask), mask);
                     },
                     0.0, 0.0});
  }
  cases.push_back({Op::Flip, "flip_4d_mask6_c7", [](bool reference) { return CALL(flip, input({3, 5, 2, 7}, 80), 6); },
                   0.0, 0.0});
  return cases;
}

class OpsTest : public op_cases::OpCaseTest {};

VOXMAMBA_OP_CASE_TESTS(OpsTest)

INSTANTIATE_TEST_SUITE_P(AllOps, OpsTest, ::testing::ValuesIn(all_cases()),
                         [](const ::testing::TestParamInfo<OpCase>& param_info) { return param_info.param.name; });

TEST(OpsTable, EveryOpHasACase) { op_cases::expect_every_op_has_a_case(all_cases()); }

TEST(OpsDispatch, ReportsUnsupportedDeviceAndBadShapes) {
  EXPECT_THROW(conv3d(Tensor::zeros({1, 2, 2, 2}), Tensor::zeros({27, 1, 1}), Tensor(), {3, 1, 1, 1, 1}), Error);
  EXPECT_THROW(add(Tensor::zeros({2, 3}), Tensor::zeros({3, 2})), Error);
  EXPECT_THROW(linear(Tensor::zeros({2, 3}), Tensor::zeros({4, 2}), Tensor()), Error);
  // A residual must have the output's shape and type, on every backend before any work.
  for (bool reference : {false, true}) {
    const Tensor x = Tensor::zeros({2, 3}), w = Tensor::zeros({3, 4});
    for (const Shape& wrong : {Shape{2, 3}, Shape{4, 2}}) {
      EXPECT_NE(testing::error_of([&] { CALL(linear, x, w, Tensor(), std::nullopt, Tensor::zeros(wrong)); })
                    .find("differs from the output's"),
                std::string::npos)
          << (reference ? "reference" : "dispatch");
    }
    EXPECT_NO_THROW(CALL(linear, x, w, Tensor(), std::nullopt, Tensor::zeros({2, 4})));
  }
  // A skip that does not match the upsampled volume (here 2 x 2 x 3 against 2 x 2 x 2), on
  // every backend before any work.
  for (bool reference : {false, true}) {
    const Tensor x = Tensor::zeros({1, 1, 1, 1, 2}), w = Tensor::zeros({2, 8, 3});
    EXPECT_THROW(CALL(conv_transpose3d_k2s2, x, w, Tensor(), Tensor::zeros({1, 2, 2, 3, 4})), Error);
  }
  // The residual's norm needs a residual and both of its affine vectors, each [C], on every
  // backend before any work.
  for (bool reference : {false, true}) {
    const Tensor x = Tensor::zeros({1, 2, 2, 2, 3}), c3 = Tensor::zeros({3}), c4 = Tensor::zeros({4});
    const auto expect_error = [&](const NormEpilogue& epilogue, const std::string& fragment) {
      try {
        CALL(instance_norm, x, c3, c3, 1e-5f, epilogue);
        ADD_FAILURE() << "expected an error containing '" << fragment << "'";
      } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find(fragment), std::string::npos) << error.what();
      }
    };
    expect_error(NormEpilogue{Tensor(), false, 0.01f, c3, c3}, "need a residual");
    expect_error(NormEpilogue{x, false, 0.01f, c3, Tensor()}, "needs both residual_gamma and residual_beta");
    expect_error(NormEpilogue{x, false, 0.01f, c4, c3}, "residual_gamma must be [3], got [4]");
  }
  // A conv and its norm as one op: a norm affine that does not fit the conv's output channels.
  for (bool reference : {false, true}) {
    const Tensor x = Tensor::zeros({1, 2, 2, 2, 2}), w = Tensor::zeros({27, 2, 3});
    try {
      CALL(conv3d_instance_norm, x, w, Tensor(), {3, 1, 1, 1, 1}, Tensor::zeros({4}), Tensor(), 1e-5f,
           NormEpilogue{});
      ADD_FAILURE() << "expected an error about gamma";
    } catch (const Error& error) {
      EXPECT_NE(std::string(error.what()).find("gamma must be [3], got [4]"), std::string::npos)
          << error.what();
    }
  }
  try {
    layer_norm(Tensor(), Tensor(), Tensor(), 1e-5f);
    FAIL() << "expected an error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("layer_norm"), std::string::npos);
  }
}

// The same misfit on the GPU, where the conv and its norm are one op: in float32, and in
// float16 through the resident-weight conv that gathers the norm's statistics.
TEST(OpsDispatch, CudaConvInstanceNormRefusesAMisfitAffine) {
  VOXMAMBA_REQUIRE_CUDA_DEVICE();
  const Device gpu = Device::cuda(0);
  for (DType type : {DType::f32, DType::f16}) {
    const Tensor x = cast(Tensor::zeros({1, 4, 4, 4, 16}).to(gpu), type);
    const Tensor w = cast(Tensor::zeros({27, 16, 48}).to(gpu), type);
    const Tensor fits = Tensor::zeros({48}).to(gpu), misfit = Tensor::zeros({47}).to(gpu);
    const auto expect_error = [&](const Tensor& gamma, const Tensor& beta, const std::string& expected) {
      try {
        conv3d_instance_norm(x, w, Tensor(), {3, 1, 1, 1, 1}, gamma, beta, 1e-5f, NormEpilogue{});
        ADD_FAILURE() << "expected an error containing: " << expected << " (" << dtype_name(type) << ")";
      } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find(expected), std::string::npos) << error.what();
      }
    };
    expect_error(misfit, fits, "gamma must be [48], got [47]");
    expect_error(fits, misfit, "beta must be [48], got [47]");
  }
}

}  // namespace
}  // namespace voxmamba::kernels
