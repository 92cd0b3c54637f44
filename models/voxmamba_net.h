#pragma once
// VoxMambaNet (network.md): D-LKA + Mamba encoder, UNETR-style residual decoder.
#include <vector>

#include "models/decoder_blocks.h"
#include "models/dlka_block.h"
#include "models/mamba_block.h"
#include "models/network_config.h"

namespace voxmamba::models {

struct EncoderStage {
  bool has_down = false;
  NormLayer down_norm;
  Conv3dLayer down_conv;
  struct BlockPair {
    DlkaBlock dlka;
    MambaBlock mamba;
  };
  std::vector<BlockPair> blocks;
  NormLayer out_norm;
  LinearLayer fc1, fc2;
};

class VoxMambaNet {
 public:
  // Checks `parameters` against the config (missing, extra, mis-shaped tensors are errors
  // naming the tensor), packs them and moves them to `device`; the map may be dropped
  // afterwards. `activations` is float32, or bfloat16 or float16 on a GPU (fp32 accumulation;
  // the weights of dense convs and linear maps are stored in that type too).
  VoxMambaNet(const NetworkConfig& config, const ParameterMap& parameters, Device device = Device::cpu(),
              DType activations = DType::f32);

  const NetworkConfig& config() const { return config_; }
  Device device() const { return device_; }
  DType activations() const { return activations_; }

  // x [N, D, H, W, in_channels] float32 (or of the activations' type) on the network's
  // device, D, H, W multiples of 16 -> float32 logits [N, D, H, W, classes] on that device.
  Tensor forward(const Tensor& x) const;
  // Throws Error describing why `shape` is not a valid input (rank, channels, multiples of 16).
  void check_input_shape(const Shape& shape) const;

 private:
  NetworkConfig config_;
  Device device_;
  DType activations_;
  Conv3dLayer stem_;
  std::vector<EncoderStage> stages_;
  std::vector<ResBlock> encoders_;  // enc0..enc3, bott
  std::vector<UpBlock> ups_;        // dec3, dec2, dec1, dec0
  ResBlock head_res_;
  LinearLayer head_out_;
};

}  // namespace voxmamba::models
