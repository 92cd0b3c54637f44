#include "core/memory.h"

#include <sys/mman.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <unordered_map>
#include <cstring>
#include <new>

#include "core/error.h"

namespace voxmamba {
namespace {

constexpr std::size_t kAlignment = 64;  // one cache line, and one AVX-512 register
constexpr std::size_t kLargeBlock = std::size_t(1) << 20;
constexpr std::size_t kHugePage = std::size_t(2) << 20;
constexpr std::size_t kCacheLimit = std::size_t(8) << 30;

// Large activations are allocated and freed many times per forward pass with the same few
// sizes. Fresh mmap'd blocks cost a page fault per 4 KiB on first touch (a fifth of the CPU
// forward time at 128^3 before this cache), so freed large blocks are kept for reuse by size,
// up to kCacheLimit bytes, on transparent huge pages where the kernel allows.
class CpuAllocator final : public DeviceAllocator {
 public:
  void* allocate(std::size_t bytes, int) override {
    if (bytes < kLargeBlock) return aligned(bytes == 0 ? kAlignment : round_up(bytes, kAlignment), kAlignment);
    const std::size_t rounded = round_up(bytes, kHugePage);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto found = cache_.find(rounded);
      if (found != cache_.end()) {
        void* pointer = found->second;
        cache_.erase(found);
        cached_bytes_ -= rounded;
        sizes_[pointer] = rounded;
        return pointer;
      }
    }
    void* pointer = aligned(rounded, kHugePage);
    ::madvise(pointer, rounded, MADV_HUGEPAGE);  // advice only; failure is harmless
    std::lock_guard<std::mutex> lock(mutex_);
    sizes_[pointer] = rounded;
    return pointer;
  }

  void release(void* pointer, int) override {
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = sizes_.find(pointer);
    if (found == sizes_.end()) {
      std::free(pointer);
      return;
    }
    const std::size_t size = found->second;
    sizes_.erase(found);
    cache_.emplace(size, pointer);
    cached_bytes_ += size;
    while (cached_bytes_ > kCacheLimit) {  // evict the largest blocks first
      auto largest = std::prev(cache_.end());
      cached_bytes_ -= largest->first;
      std::free(largest->second);
      cache_.erase(largest);
    }
  }

  void copy(void* destination, Device, const void* source, Device, std::size_t bytes) override {
    std::memcpy(destination, source, bytes);
  }

 private:
  static std::size_t round_up(std::size_t value, std::size_t multiple) {
    return (value + multiple - 1) / multiple * multiple;
  }
  static void* aligned(std::size_t bytes, std::size_t alignment) {
    void* pointer = std::aligned_alloc(alignment, bytes);
    if (pointer == nullptr) throw Error("out of host memory allocating " + std::to_string(bytes) + " bytes");
    return pointer;
  }

  std::mutex mutex_;
  std::multimap<std::size_t, void*> cache_;        // free large blocks by size
  std::unordered_map<void*, std::size_t> sizes_;   // large blocks in use
  std::size_t cached_bytes_ = 0;
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
