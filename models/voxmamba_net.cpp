#include "models/voxmamba_net.h"

namespace voxmamba::models {

VoxMambaNet::VoxMambaNet(const NetworkConfig& config, const ParameterMap& parameters, Device device,
                         DType activations)
    : config_(config), device_(device), activations_(activations) {
  if (activations != DType::f32 && activations != DType::bf16 && activations != DType::f16) {
    throw Error(std::string("activations must be float32, bfloat16 or float16, not ") + dtype_name(activations));
  }
  if (activations != DType::f32 && device.is_cpu()) {
    throw Error(std::string(dtype_name(activations)) + " runs on the GPU only; use float32 on the CPU");
  }
  check_parameters(config, parameters);
  const ParameterReader root(parameters, "", device, activations);
  stem_ = Conv3dLayer::load(root.child("encoder/stem"), {7, 2, 3, 1, 1}, true);
  for (int i = 0; i < kStages; ++i) {
    const ParameterReader r = root.child("encoder/stages/" + std::to_string(i));
    EncoderStage stage;
    stage.has_down = i > 0;
    if (stage.has_down) {
      stage.down_norm = NormLayer::load(r.child("down/norm"));
      stage.down_conv = Conv3dLayer::load(r.child("down/conv"), {2, 2, 0, 1, 1}, true);
    }
    for (int j = 0; j < config.depths[i]; ++j) {
      const ParameterReader b = r.child("blocks/" + std::to_string(j));
      stage.blocks.push_back({DlkaBlock::load(b.child("dlka"), config.deformable[i]),
                              MambaBlock::load(b.child("mamba"), config.dt_rank(i), config.d_state)});
    }
    stage.out_norm = NormLayer::load(r.child("out/norm"));
    stage.fc1 = LinearLayer::load(r.child("out/mlp/fc1"), true);
    stage.fc2 = LinearLayer::load(r.child("out/mlp/fc2"), true);
    stages_.push_back(std::move(stage));
  }
  for (const char* name : {"enc0", "enc1", "enc2", "enc3", "bott"}) {
    encoders_.push_back(ResBlock::load(root.child(std::string("decoder/") + name)));
  }
  for (const char* name : {"dec3", "dec2", "dec1", "dec0"}) {
    ups_.push_back(UpBlock::load(root.child(std::string("decoder/") + name)));
  }
  head_res_ = ResBlock::load(root.child("decoder/head/res"));
  head_out_ = LinearLayer::load(root.child("decoder/head/out"), true, DType::f32);  // float32 logits (forward)
}

void VoxMambaNet::check_input_shape(const Shape& shape) const {
  if (shape.size() != 5) {
    throw Error("input must have rank 5 (N, D, H, W, C), got shape " + shape_string(shape));
  }
  if (shape[4] != config_.in_channels) {
    throw Error("input has " + std::to_string(shape[4]) + " channels but the model expects " +
                std::to_string(config_.in_channels));
  }
  if (shape[0] < 1) throw Error("input batch is empty");
  for (int axis = 1; axis <= 3; ++axis) {
    if (shape[axis] < kSpatialMultiple || shape[axis] % kSpatialMultiple != 0) {
      throw Error("input spatial size " + shape_string({shape[1], shape[2], shape[3]}) +
                  " is not a multiple of 16 on every axis");
    }
  }
}

Tensor VoxMambaNet::forward(const Tensor& input) const {
  check_input_shape(input.shape());
  if (input.device() != device_) {
    throw Error("input is on " + input.device().name() + " but the network is on " + device_.name());
  }
  // Encoder: feat_i go to the decoder; x itself continues into the next stage.
  std::vector<Tensor> features;
  const Tensor image = kernels::cast(input, activations_);
  Tensor x = stem_.forward(image);
  for (const EncoderStage& stage : stages_) {
    if (stage.has_down) x = stage.down_conv.forward(stage.down_norm.instance_norm(x));
    for (const EncoderStage::BlockPair& pair : stage.blocks) {
      x = pair.dlka.forward(x);   // x + DLKA(x)
      x = pair.mamba.forward(x);  // x + Mamba(LayerNorm(x))
    }
    features.push_back(stage.fc2.forward(kernels::gelu(stage.fc1.forward(stage.out_norm.instance_norm(x)))));
  }
  x = Tensor();
  // Decoder. Measured and dropped: the skip ResBlocks on a second stream, beside the encoder's
  // later stages and the decoder's coarse levels, whose kernels have small grids (a fork and
  // join recorded into the graph, the allocator keeping each stream off the blocks the other
  // might still use). H200, base 128^3, fp16, the forward with the graph, two rounds: all on
  // one stream 30.04 / 30.06 ms; enc1 and enc0 from the end of stage 1, 30.06 / 30.08; enc2
  // and enc3, 30.11 / 30.08; enc0 from the end of stage 0, 30.16 / 30.23. Stream priorities
  // did not change it. Those coarse kernels leave no idle share of the GPU worth the second
  // stream's bookkeeping.
  const Tensor enc0 = encoders_[0].forward(image);
  const Tensor enc1 = encoders_[1].forward(features[0]);
  const Tensor enc2 = encoders_[2].forward(features[1]);
  const Tensor enc3 = encoders_[3].forward(features[2]);
  Tensor y = encoders_[4].forward(features[3]);
  features.clear();
  y = ups_[0].forward(y, enc3);
  y = ups_[1].forward(y, enc2);
  y = ups_[2].forward(y, enc1);
  y = ups_[3].forward(y, enc0);
  // Logits straight from the fp32 accumulators: rounding them to bfloat16 would move them by
  // up to 2^-9 of their size, enough to flip close calls between classes.
  return head_out_.forward(head_res_.forward(y), DType::f32);
}

}  // namespace voxmamba::models
