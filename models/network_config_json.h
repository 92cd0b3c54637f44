#pragma once
// NetworkConfig <-> the JSON stored as a model file's `config` attribute (network.md keys at
// the top level; the pipeline's own fields sit beside them and are kept untouched).
#include <string>

#include "models/network_config.h"

namespace voxmamba::models {

// Throws Error "invalid config: ..." naming the missing or malformed key.
NetworkConfig network_config_from_json(const std::string& text);
// Writes the network keys into `json_object_text` (an existing JSON object, or empty) and
// returns the merged, pretty-printed JSON.
std::string network_config_to_json(const NetworkConfig& config, const std::string& json_object_text = "");

}  // namespace voxmamba::models
