#pragma once
// Device memory behind Tensor. The CPU allocator is built in; a backend (kernels/cuda)
// registers its own at start-up, so core/ never includes a GPU header.
#include <cstddef>
#include <memory>

#include "core/device.h"

namespace voxmamba {

class DeviceAllocator {
 public:
  virtual ~DeviceAllocator() = default;
  virtual void* allocate(std::size_t bytes, int device_index) = 0;
  virtual void release(void* pointer, int device_index) = 0;
  // Copies `bytes` between any two devices this allocator or the CPU owns.
  virtual void copy(void* destination, Device destination_device, const void* source, Device source_device,
                    std::size_t bytes) = 0;
};

void register_device_allocator(DeviceType type, DeviceAllocator* allocator);
DeviceAllocator& device_allocator(DeviceType type);  // throws Error when no backend was built

// Owning, 64-byte aligned buffer on one device.
class Storage {
 public:
  Storage(std::size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  std::size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
  Device device_;
};

}  // namespace voxmamba
