// The CUDA backend's entry points: device discovery and the device allocator that core/
// uses for tensors on the GPU. The op kernels themselves come with the CUDA backend issue;
// until then kernels/ops.cpp reports a clear error for a CUDA tensor.
#include <cuda_runtime.h>

#include <mutex>
#include <string>

#include "core/error.h"
#include "core/memory.h"
#include "kernels/backend.h"

namespace voxmamba::kernels {
namespace {

void check_cuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw Error(std::string("CUDA: ") + what + ": " + cudaGetErrorString(status));
}

class CudaAllocator final : public DeviceAllocator {
 public:
  void* allocate(std::size_t bytes, int device_index) override {
    check_cuda(cudaSetDevice(device_index), "select device");
    void* pointer = nullptr;
    check_cuda(cudaMalloc(&pointer, bytes == 0 ? 1 : bytes), "allocate device memory");
    return pointer;
  }
  void release(void* pointer, int device_index) override {
    cudaSetDevice(device_index);
    cudaFree(pointer);
  }
  void copy(void* destination, Device destination_device, const void* source, Device source_device,
            std::size_t bytes) override {
    cudaMemcpyKind kind = cudaMemcpyDefault;  // unified addressing tells the directions apart
    check_cuda(cudaMemcpy(destination, source, bytes, kind), "copy");
  }
};

}  // namespace

bool cuda_built() { return true; }

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error so later calls start clean
    return 0;
  }
  return count;
}

void initialize_cuda() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (cuda_device_count() == 0) throw Error("no CUDA device is available (no GPU or no driver)");
    static CudaAllocator allocator;
    register_device_allocator(DeviceType::CUDA, &allocator);
  });
}

}  // namespace voxmamba::kernels
