#pragma once
#include <string>

namespace voxmamba {

enum class DeviceType { CPU, CUDA };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;

  static Device cpu() { return {DeviceType::CPU, 0}; }
  static Device cuda(int index = 0) { return {DeviceType::CUDA, index}; }
  bool is_cpu() const { return type == DeviceType::CPU; }
  bool operator==(const Device& other) const { return type == other.type && index == other.index; }
  bool operator!=(const Device& other) const { return !(*this == other); }
  std::string name() const;
};

// Parses "cpu", "cuda" or "cuda:N"; throws Error on anything else.
Device parse_device(const std::string& text);

}  // namespace voxmamba
