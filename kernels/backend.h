#pragma once
// Which compute backends this build has, and whether their devices are present.
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "core/device.h"

namespace voxmamba::kernels {

bool cuda_built();          // compiled with VOXMAMBA_CUDA
int cuda_device_count();    // 0 when not built or no GPU/driver is present
// Waits for all work queued on `device` (no-op for the CPU); for timing.
void synchronize(const Device& device);
// Peak bytes of GPU memory held by tensors and by recorded CUDA graphs since start (the caching
// allocator's high-water mark, its idle cache excluded); 0 without CUDA.
std::size_t cuda_peak_memory_bytes();
// "cuda X.Y, cudnn N" for the libraries this process loaded (benchmark records); "" without CUDA.
std::string gpu_library_versions();
// Restarts the high-water mark from what is held now (e.g. after a warm-up pass).
void reset_cuda_peak_memory();
// Milliseconds that `work` takes on `device`: CUDA events around it on a GPU (queued work
// included, the host's launch overhead only where it stalls the GPU), the wall clock on the CPU.
double elapsed_ms(const Device& device, const std::function<void()>& work);
// GPU work recorded once as a CUDA graph and replayed as one launch: the same kernels on the
// same buffers, without the host's cost per kernel (record_gpu_graph).
class GpuGraph {
 public:
  ~GpuGraph();  // waits for replays in flight; the graph's buffers go back to the cache
  GpuGraph(const GpuGraph&) = delete;
  GpuGraph& operator=(const GpuGraph&) = delete;
  // Queues the recorded work again, on the buffers it was recorded with.
  void replay();
  struct State;

 private:
  GpuGraph();
  friend std::unique_ptr<GpuGraph> record_gpu_graph(const Device& device, const std::function<void()>& work);
  std::unique_ptr<State> state_;
};
// Runs `work` on the host with `device`'s GPU work recorded instead of executed. Tensors that
// `work` allocates take buffers reserved for the graph, so that nothing allocated between
// replays is handed one of them; tensors it keeps (its outputs) hold what each replay writes.
// Kernel choices (cuDNN plans) must already be made: run `work` once before. Throws Error when
// `work` does what a graph cannot hold (a copy to the host, a wait); without CUDA, always.
std::unique_ptr<GpuGraph> record_gpu_graph(const Device& device, const std::function<void()>& work);

// Registers the CUDA allocator with core/ (idempotent). Throws Error when no GPU is usable.
void initialize_cuda();

}  // namespace voxmamba::kernels
