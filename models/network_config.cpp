#include "models/network_config.h"

#include "core/error.h"

namespace voxmamba::models {

NetworkConfig preset_config(const std::string& name, int num_classes) {
  NetworkConfig config;
  config.num_classes = num_classes;
  if (name == "base") {
    config.dims = {48, 96, 192, 384};
    config.depths = {2, 2, 2, 2};
    config.hidden = 768;
    config.deformable = {true, true, true, true};
  } else if (name == "small") {
    config.dims = {24, 48, 96, 192};
    config.depths = {1, 1, 1, 1};
    config.hidden = 384;
    config.deformable = {false, false, true, true};
  } else {
    throw Error("unknown config preset '" + name + "' (expected small, base or a JSON file)");
  }
  validate(config);
  return config;
}

void validate(const NetworkConfig& c) {
  auto require = [](bool ok, const std::string& field, const std::string& rule) {
    if (!ok) throw Error("invalid config: " + field + " " + rule);
  };
  require(c.in_channels >= 1 && c.in_channels <= 64, "in_channels", "must be in 1..64");
  require(c.num_classes >= 1 && c.num_classes <= 1024, "num_classes", "must be in 1..1024");
  for (int i = 0; i < kStages; ++i) {
    require(c.dims[i] >= 1 && c.dims[i] <= 8192, "dims", "must be positive (at most 8192)");
    require(c.depths[i] >= 0 && c.depths[i] <= 64, "depths", "must be in 0..64");
  }
  require(c.hidden >= 1 && c.hidden <= 16384, "hidden", "must be positive (at most 16384)");
  require(c.d_state >= 1 && c.d_state <= 64, "d_state", "must be in 1..64");
  require(c.d_conv >= 1 && c.d_conv <= 16, "d_conv", "must be in 1..16");
  require(c.expand >= 1 && c.expand <= 16, "expand", "must be in 1..16");
}

}  // namespace voxmamba::models
