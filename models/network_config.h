#pragma once
// The hyper-parameters of VoxMambaNet (network.md, "Configuration").
#include <array>
#include <cstdint>
#include <string>

namespace voxmamba::models {

inline constexpr int kStages = 4;

struct NetworkConfig {
  int in_channels = 1;
  int num_classes = 2;
  std::array<int, kStages> dims{};
  std::array<int, kStages> depths{};
  int hidden = 0;
  int d_state = 16;
  int d_conv = 4;
  int expand = 2;
  std::array<bool, kStages> deformable{};

  int inner_channels(int stage) const { return expand * dims[stage]; }  // E
  int dt_rank(int stage) const { return (dims[stage] + 15) / 16; }       // R = ceil(C / 16)
};

// "small" or "base" with `num_classes` outputs; throws Error for any other name.
NetworkConfig preset_config(const std::string& name, int num_classes);
// Throws Error naming the first invalid field.
void validate(const NetworkConfig& config);
// Spatial sizes must be multiples of this (four halvings: stem and three downsamplings).
inline constexpr std::int64_t kSpatialMultiple = 16;

}  // namespace voxmamba::models
