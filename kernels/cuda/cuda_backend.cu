// The CUDA backend's entry points: device discovery, error checks, the stream all GPU work is
// queued on, the caching device allocator that core/ uses for tensors on the GPU, and CUDA
// graphs. cudaMalloc/cudaFree synchronise the device and cost tens of microseconds, so freed
// blocks are kept by size for reuse.
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <tuple>
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

cudaStream_t stream() {
  constexpr int kDevices = 64;
  static cudaStream_t streams[kDevices] = {};
  static std::once_flag once[kDevices];
  int device = 0;
  check_cuda(cudaGetDevice(&device), "current device");
  if (device >= kDevices)
    throw Error("CUDA: device " + std::to_string(device) + " is beyond the 64 this build supports");
  std::call_once(once[device], [&] {
    check_cuda(cudaStreamCreateWithFlags(&streams[device], cudaStreamNonBlocking), "create the stream");
  });
  return streams[device];
}

namespace {

// A device attribute of the current device, kept per device: the query is cheap but kernels
// size their grids and shared memory per launch.
template <cudaDeviceAttr kAttribute>
int cached_device_attribute(const char* what) {
  constexpr int kDevices = 64;
  static std::atomic<int> values[kDevices] = {};
  int device = 0;
  check_cuda(cudaGetDevice(&device), "current device");
  int value = device < kDevices ? values[device].load(std::memory_order_relaxed) : 0;
  if (value == 0) {
    check_cuda(cudaDeviceGetAttribute(&value, kAttribute, device), what);
    if (device < kDevices) values[device].store(value, std::memory_order_relaxed);
  }
  return value;
}

}  // namespace

int multiprocessor_count() {
  return cached_device_attribute<cudaDevAttrMultiProcessorCount>("multiprocessor count");
}

int shared_memory_per_block_optin() {
  return cached_device_attribute<cudaDevAttrMaxSharedMemoryPerBlockOptin>("shared memory limit");
}

std::int64_t blocks_per_multiprocessor(const void* kernel, int threads, std::size_t dynamic_bytes) {
  using Key = std::tuple<int, const void*, int, std::size_t>;  // device, kernel, threads, bytes
  static std::mutex mutex;
  static std::map<Key, std::int64_t> known;
  int device = 0;
  check_cuda(cudaGetDevice(&device), "current device");
  const Key key{device, kernel, threads, dynamic_bytes};
  {
    const std::lock_guard<std::mutex> lock(mutex);
    if (const auto found = known.find(key); found != known.end()) return found->second;
  }
  int blocks = 0;
  check_cuda(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kernel, threads, dynamic_bytes),
             "blocks a multiprocessor holds");
  const std::int64_t held = blocks < 1 ? 1 : blocks;
  const std::lock_guard<std::mutex> lock(mutex);
  known.emplace(key, held);
  return held;
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

// The pool that this thread's allocations come from: 0, the shared cache, except while the
// thread records a CUDA graph (GraphPoolScope below).
thread_local int recording_pool = 0;

// Blocks belong to a pool: 0 is the shared cache; each CUDA graph has a pool of its own that
// holds the buffers its recorded kernels use. A freed block goes back to its pool, so a
// graph's buffers are reused only by that graph's later allocations while it is recorded,
// never by work queued between two of its replays; when the graph ends, its blocks join the
// shared cache.
class CachingCudaAllocator final : public DeviceAllocator {
 public:
  void* allocate(std::size_t bytes, int device_index) override {
    const std::size_t rounded = round(bytes);
    const int pool = recording_pool;
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = free_.find({pool, device_index, rounded});
    if (found != free_.end()) {
      void* pointer = found->second;
      free_.erase(found);
      in_use_[pointer] = {pool, device_index, rounded};
      if (pool == 0) note_in_use(rounded);  // a graph's free blocks were never uncounted
      return pointer;
    }
    check_cuda(cudaSetDevice(device_index), "select device");
    void* pointer = nullptr;
    cudaError_t status = cudaMalloc(&pointer, rounded);
    if (status == cudaErrorMemoryAllocation && pool == 0) {
      cudaGetLastError();
      release_cache();  // give cached blocks back and try once more before failing
      status = cudaMalloc(&pointer, rounded);
    }
    if (status != cudaSuccess) {
      cudaGetLastError();
      throw Error("out of GPU memory allocating " + std::to_string(bytes >> 20) + " MiB on cuda:" +
                  std::to_string(device_index));
    }
    in_use_[pointer] = {pool, device_index, rounded};
    note_in_use(rounded);
    return pointer;
  }

  void release(void* pointer, int) override {
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = in_use_.find(pointer);
    if (found == in_use_.end()) return;
    Key key = found->second;
    if (std::get<0>(key) != 0 && live_pools_.count(std::get<0>(key)) == 0) std::get<0>(key) = 0;
    free_.emplace(key, pointer);
    // A live graph's blocks stay counted: its replays write them.
    if (std::get<0>(key) == 0) bytes_in_use_ -= std::get<2>(key);
    in_use_.erase(found);
  }

  // Copies from or to the host finish before this returns (the caller reads or frees that
  // memory next); a copy between GPU buffers stays queued on the stream, in order.
  void copy(void* destination, Device destination_device, const void* source, Device source_device,
            std::size_t bytes) override {
    check_cuda(cudaMemcpyAsync(destination, source, bytes, cudaMemcpyDefault, stream()), "copy");
    if (destination_device.is_cpu() || source_device.is_cpu())
      check_cuda(cudaStreamSynchronize(stream()), "copy");
  }

  int open_pool() {
    std::lock_guard<std::mutex> lock(mutex_);
    live_pools_.insert(++last_pool_);
    return last_pool_;
  }
  // The pool's free blocks join the shared cache, and so will its blocks still in use when
  // they are freed. The caller has waited for the work that used them.
  void close_pool(int pool) {
    std::lock_guard<std::mutex> lock(mutex_);
    live_pools_.erase(pool);
    for (auto it = free_.begin(); it != free_.end();) {
      if (std::get<0>(it->first) != pool) {
        ++it;
        continue;
      }
      free_.emplace(Key{0, std::get<1>(it->first), std::get<2>(it->first)}, it->second);
      bytes_in_use_ -= std::get<2>(it->first);
      it = free_.erase(it);
    }
  }
  // Frees the shared cache's idle blocks, so that a recording, which allocates its own, does
  // not hold a second copy of the memory the cache holds.
  void trim() {
    std::lock_guard<std::mutex> lock(mutex_);
    release_cache();
  }

  void reset_peak() {
    std::lock_guard<std::mutex> lock(mutex_);
    peak_bytes_ = bytes_in_use_;
  }
  std::size_t peak_bytes() {
    std::lock_guard<std::mutex> lock(mutex_);
    return peak_bytes_;
  }

 private:
  using Key = std::tuple<int, int, std::size_t>;  // pool, device, rounded size
  static std::size_t round(std::size_t bytes) {
    if (bytes <= 512) return 512;
    if (bytes < (std::size_t(1) << 20)) return (bytes + 511) / 512 * 512;
    return (bytes + kGranule - 1) / kGranule * kGranule;
  }
  void release_cache() {  // the shared cache only: a live graph's kernels use its pool's blocks
    for (auto it = free_.begin(); it != free_.end();) {
      if (std::get<0>(it->first) != 0) {
        ++it;
        continue;
      }
      cudaSetDevice(std::get<1>(it->first));
      cudaFree(it->second);
      it = free_.erase(it);
    }
  }

  void note_in_use(std::size_t bytes) {
    bytes_in_use_ += bytes;
    peak_bytes_ = std::max(peak_bytes_, bytes_in_use_);
  }

  std::size_t bytes_in_use_ = 0, peak_bytes_ = 0;
  std::mutex mutex_;
  std::multimap<Key, void*> free_;
  std::unordered_map<void*, Key> in_use_;
  std::set<int> live_pools_;
  int last_pool_ = 0;
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
  cuda::check_cuda(cudaEventRecord(start, cuda::stream()), "record an event");
  work();
  cuda::check_cuda(cudaEventRecord(stop, cuda::stream()), "record an event");
  cuda::check_cuda(cudaEventSynchronize(stop), "wait for an event");
  float ms = 0;
  cuda::check_cuda(cudaEventElapsedTime(&ms, start, stop), "time events");
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return ms;
}

struct GpuGraph::State {
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  int device = 0;
  int pool = 0;
};

GpuGraph::GpuGraph() : state_(std::make_unique<State>()) {}

GpuGraph::~GpuGraph() {
  cudaSetDevice(state_->device);
  cudaStreamSynchronize(cuda::stream());  // a replay may still be running on the pool's buffers
  if (state_->exec) cudaGraphExecDestroy(state_->exec);
  if (state_->graph) cudaGraphDestroy(state_->graph);
  allocator().close_pool(state_->pool);
}

void GpuGraph::replay() {
  cuda::check_cuda(cudaSetDevice(state_->device), "select device");
  cuda::check_cuda(cudaGraphLaunch(state_->exec, cuda::stream()), "replay a CUDA graph");
}

namespace {
// Points this thread's allocations at a graph's pool while it is recorded.
class GraphPoolScope {
 public:
  explicit GraphPoolScope(int pool) : previous_(cuda::recording_pool) { cuda::recording_pool = pool; }
  ~GraphPoolScope() { cuda::recording_pool = previous_; }
  GraphPoolScope(const GraphPoolScope&) = delete;
  GraphPoolScope& operator=(const GraphPoolScope&) = delete;

 private:
  int previous_;
};
}  // namespace

std::unique_ptr<GpuGraph> record_gpu_graph(const Device& device, const std::function<void()>& work) {
  if (device.is_cpu()) throw Error("a CUDA graph records GPU work; the device given is the CPU");
  initialize_cuda();
  cuda::check_cuda(cudaSetDevice(device.index), "select device");
  std::unique_ptr<GpuGraph> recorded(new GpuGraph());
  GpuGraph::State& state = *recorded->state_;
  state.device = device.index;
  cuda::check_cuda(cudaStreamSynchronize(cuda::stream()), "synchronize before recording");
  allocator().trim();
  state.pool = allocator().open_pool();
  // Relaxed: the recording may cudaMalloc blocks for its pool, a call the stricter modes
  // count as unsafe; what a graph cannot hold (a copy to the host, a wait) still fails, below.
  cuda::check_cuda(cudaStreamBeginCapture(cuda::stream(), cudaStreamCaptureModeRelaxed), "begin recording");
  try {
    GraphPoolScope scope(state.pool);
    work();
  } catch (const std::exception& error) {
    cudaGraph_t partial = nullptr;
    cudaStreamEndCapture(cuda::stream(), &partial);
    if (partial) cudaGraphDestroy(partial);
    cudaGetLastError();
    throw Error(std::string("this GPU work cannot be recorded as a CUDA graph: ") + error.what());
  }
  const cudaError_t ended = cudaStreamEndCapture(cuda::stream(), &state.graph);
  if (ended != cudaSuccess) {
    cudaGetLastError();
    throw Error(std::string("this GPU work cannot be recorded as a CUDA graph: ") +
                cudaGetErrorString(ended));
  }
  cuda::check_cuda(cudaGraphInstantiate(&state.exec, state.graph, 0), "instantiate a CUDA graph");
  return recorded;
}

void initialize_cuda() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (cuda_device_count() == 0) throw Error("no CUDA device is available (no GPU or no driver)");
    register_device_allocator(DeviceType::CUDA, &allocator());
  });
}

}  // namespace voxmamba::kernels
