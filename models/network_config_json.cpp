#include "models/network_config_json.h"

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace voxmamba::models {
namespace {

using nlohmann::json;

const json& require_key(const json& object, const char* key) {
  if (!object.contains(key)) throw Error(std::string("invalid config: key '") + key + "' is missing");
  return object.at(key);
}

int read_int(const json& object, const char* key) {
  const json& value = require_key(object, key);
  if (!value.is_number_integer()) throw Error(std::string("invalid config: '") + key + "' must be an integer");
  return value.get<int>();
}

template <typename T> std::array<T, kStages> read_array(const json& object, const char* key) {
  const json& value = require_key(object, key);
  if (!value.is_array() || value.size() != kStages) {
    throw Error(std::string("invalid config: '") + key + "' must be a list of 4 values");
  }
  std::array<T, kStages> result{};
  for (int i = 0; i < kStages; ++i) {
    const bool ok = std::is_same_v<T, bool> ? value[i].is_boolean() : value[i].is_number_integer();
    if (!ok) throw Error(std::string("invalid config: '") + key + "' has a value of the wrong type");
    result[i] = value[i].get<T>();
  }
  return result;
}

}  // namespace

NetworkConfig network_config_from_json(const std::string& text) {
  json object;
  try {
    object = json::parse(text);
  } catch (const json::parse_error& error) {
    throw Error(std::string("invalid config: not valid JSON (") + error.what() + ")");
  }
  if (!object.is_object()) throw Error("invalid config: expected a JSON object");
  NetworkConfig config;
  config.in_channels = read_int(object, "in_channels");
  config.num_classes = read_int(object, "num_classes");
  config.dims = read_array<int>(object, "dims");
  config.depths = read_array<int>(object, "depths");
  config.hidden = read_int(object, "hidden");
  config.d_state = read_int(object, "d_state");
  config.d_conv = read_int(object, "d_conv");
  config.expand = read_int(object, "expand");
  config.deformable = read_array<bool>(object, "deformable");
  validate(config);
  return config;
}

std::string network_config_to_json(const NetworkConfig& config, const std::string& json_object_text) {
  json object = json_object_text.empty() ? json::object() : json::parse(json_object_text);
  object["in_channels"] = config.in_channels;
  object["num_classes"] = config.num_classes;
  object["dims"] = config.dims;
  object["depths"] = config.depths;
  object["hidden"] = config.hidden;
  object["d_state"] = config.d_state;
  object["d_conv"] = config.d_conv;
  object["expand"] = config.expand;
  object["deformable"] = config.deformable;
  return object.dump(2);
}

}  // namespace voxmamba::models
