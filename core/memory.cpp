#include "core/memory.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include "core/error.h"

namespace voxmamba {
namespace {

constexpr std::size_t kAlignment = 64;  // one cache line, and one AVX-512 register

class CpuAllocator final : public DeviceAllocator {
 public:
  void* allocate(std::size_t bytes, int) override {
    const std::size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
    void* pointer = std::aligned_alloc(kAlignment, rounded == 0 ? kAlignment : rounded);
    if (pointer == nullptr) throw Error("out of host memory allocating " + std::to_string(bytes) + " bytes");
    return pointer;
  }
  void release(void* pointer, int) override { std::free(pointer); }
  void copy(void* destination, Device, const void* source, Device, std::size_t bytes) override {
    std::memcpy(destination, source, bytes);
  }
};

DeviceAllocator*& slot(DeviceType type) {
  static DeviceAllocator* cpu = new CpuAllocator();
  static DeviceAllocator* cuda = nullptr;
  return type == DeviceType::CPU ? cpu : cuda;
}

}  // namespace

void register_device_allocator(DeviceType type, DeviceAllocator* allocator) { slot(type) = allocator; }

DeviceAllocator& device_allocator(DeviceType type) {
  DeviceAllocator* allocator = slot(type);
  if (allocator == nullptr) {
    throw Error("no allocator for device " + Device{type, 0}.name() +
                " (this build has no CUDA backend, or it was not initialised)");
  }
  return *allocator;
}

Storage::Storage(std::size_t bytes, Device device) : bytes_(bytes), device_(device) {
  data_ = device_allocator(device.type).allocate(bytes, device.index);
}

Storage::~Storage() { device_allocator(device_.type).release(data_, device_.index); }

}  // namespace voxmamba
