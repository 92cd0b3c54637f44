// The CUDA backend's entry points: device discovery, error checks, and the caching device
// allocator that core/ uses for tensors on the GPU. cudaMalloc/cudaFree synchronise the
// device and cost tens of microseconds, so freed blocks are kept by size for reuse.
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>

#include "core/error.h"
#include "core/memory.h"
#include "kernels/backend.h"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cudnn_conv.cuh"

namespace voxmamba::kernels {
namespace cuda {

void check_cuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw Error(std::string("CUDA: ") + what + ": " + cudaGetErrorString(status));
}

int multiprocessor_count() {
  // Kept per device: the attribute query is cheap but kernels size their grids per launch.
  constexpr int kDevices = 64;
  static std::atomic<int> counts[kDevices] = {};
  int device = 0;
  check_cuda(cudaGetDevice(&device), "current device");
  int count = device < kDevices ? counts[device].load(std::memory_order_relaxed) : 0;
  if (count == 0) {
    check_cuda(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device), "multiprocessor count");
    if (device < kDevices) counts[device].store(count, std::memory_order_relaxed);
  }
  return count;
}

void require_cuda_f32(const Tensor& x, const char* op, const char* what) {
  if (!x.defined()) return;
  if (x.dtype() != DType::f32) throw Error(std::string(op) + ": " + what + " must be float32");
  if (x.device().type != DeviceType::CUDA) throw Error(std::string(op) + ": " + what + " must be on the GPU");
}

void require_cuda_float(const Tensor& x, const char* op, const char* what) {
  if (!x.defined()) return;
  if (x.dtype() != DType::f32 && x.dtype() != DType::bf16 && x.dtype() != DType::f16) {
    throw Error(std::string(op) + ": " + what + " must be float32, bfloat16 or float16, not " + dtype_name(x.dtype()));
  }
  if (x.device().type != DeviceType::CUDA) throw Error(std::string(op) + ": " + what + " must be on the GPU");
}

void require_same_dtype(const Tensor& a, const Tensor& b, const char* op, const char* what) {
  if (b.defined() && a.dtype() != b.dtype()) {
    throw Error(std::string(op) + ": " + what + " is " + dtype_name(b.dtype()) + " but the input is " +
                dtype_name(a.dtype()));
  }
}

namespace {

constexpr std::size_t kGranule = std::size_t(2) << 20;  // sizes rounded to 2 MiB above 1 MiB

class CachingCudaAllocator final : public DeviceAllocator {
 public:
  void* allocate(std::size_t bytes, int device_index) override {
    const std::size_t rounded = round(bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = free_.find({device_index, rounded});
    if (found != free_.end()) {
      void* pointer = found->second;
      free_.erase(found);
      in_use_[pointer] = {device_index, rounded};
      note_in_use(rounded);
      return pointer;
    }
    check_cuda(cudaSetDevice(device_index), "select device");
    void* pointer = nullptr;
    cudaError_t status = cudaMalloc(&pointer, rounded);
    if (status == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      release_cache();  // give cached blocks back and try once more before failing
      status = cudaMalloc(&pointer, rounded);
    }
    if (status != cudaSuccess) {
      cudaGetLastError();
      throw Error("out of GPU memory allocating " + std::to_string(bytes >> 20) + " MiB on cuda:" +
                  std::to_string(device_index));
    }
    in_use_[pointer] = {device_index, rounded};
    note_in_use(rounded);
    return pointer;
  }

  void release(void* pointer, int) override {
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = in_use_.find(pointer);
    if (found == in_use_.end()) return;
    free_.emplace(found->second, pointer);
    bytes_in_use_ -= found->second.second;
    in_use_.erase(found);
  }

  void copy(void* destination, Device, const void* source, Device, std::size_t bytes) override {
    check_cuda(cudaMemcpy(destination, source, bytes, cudaMemcpyDefault), "copy");
  }

 private:
  using Key = std::pair<int, std::size_t>;  // device, rounded size
  static std::size_t round(std::size_t bytes) {
    if (bytes <= 512) return 512;
    if (bytes < (std::size_t(1) << 20)) return (bytes + 511) / 512 * 512;
    return (bytes + kGranule - 1) / kGranule * kGranule;
  }
  void release_cache() {
    for (auto& [key, pointer] : free_) {
      cudaSetDevice(key.first);
      cudaFree(pointer);
    }
    free_.clear();
  }

  void note_in_use(std::size_t bytes) {
    bytes_in_use_ += bytes;
    peak_bytes_ = std::max(peak_bytes_, bytes_in_use_);
  }

 public:
  void reset_peak() {
    std::lock_guard<std::mutex> lock(mutex_);
    peak_bytes_ = bytes_in_use_;
  }
  std::size_t peak_bytes() {
    std::lock_guard<std::mutex> lock(mutex_);
    return peak_bytes_;
  }

 private:
  std::size_t bytes_in_use_ = 0, peak_bytes_ = 0;
  std::mutex mutex_;
  std::multimap<Key, void*> free_;
  std::unordered_map<void*, Key> in_use_;
};

}  // namespace
}  // namespace cuda

bool cuda_built() { return true; }

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the "no driver" error so later calls start clean
    return 0;
  }
  return count;
}

void synchronize(const Device& device) {
  if (device.is_cpu()) return;
  cuda::check_cuda(cudaSetDevice(device.index), "select device");
  cuda::check_cuda(cudaDeviceSynchronize(), "synchronize");
}

namespace {
cuda::CachingCudaAllocator& allocator() {
  static cuda::CachingCudaAllocator instance;
  return instance;
}
}  // namespace

std::size_t cuda_peak_memory_bytes() { return allocator().peak_bytes(); }
void reset_cuda_peak_memory() { allocator().reset_peak(); }

std::string gpu_library_versions() {
  int runtime = 0;
  cudaRuntimeGetVersion(&runtime);
  return "cuda " + std::to_string(runtime / 1000) + "." + std::to_string(runtime % 1000 / 10) + ", cudnn " +
         std::to_string(cuda::cudnn_version());
}

double elapsed_ms(const Device& device, const std::function<void()>& work) {
  if (device.is_cpu()) {
    const auto start = std::chrono::steady_clock::now();
    work();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  }
  cudaEvent_t start = nullptr, stop = nullptr;
  cuda::check_cuda(cudaEventCreate(&start), "create an event");
  cuda::check_cuda(cudaEventCreate(&stop), "create an event");
  cuda::check_cuda(cudaEventRecord(start), "record an event");
  work();
  cuda::check_cuda(cudaEventRecord(stop), "record an event");
  cuda::check_cuda(cudaEventSynchronize(stop), "wait for an event");
  float ms = 0;
  cuda::check_cuda(cudaEventElapsedTime(&ms, start, stop), "time events");
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return ms;
}

void initialize_cuda() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (cuda_device_count() == 0) throw Error("no CUDA device is available (no GPU or no driver)");
    register_device_allocator(DeviceType::CUDA, &allocator());
  });
}

}  // namespace voxmamba::kernels
