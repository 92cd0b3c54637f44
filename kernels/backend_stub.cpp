// The build without CUDA: no devices, and a clear error when one is asked for.
#include <chrono>

#include "core/error.h"
#include "kernels/backend.h"

namespace voxmamba::kernels {
bool cuda_built() { return false; }
int cuda_device_count() { return 0; }
void synchronize(const Device&) {}
std::size_t cuda_peak_memory_bytes() { return 0; }
void reset_cuda_peak_memory() {}
std::string gpu_library_versions() { return ""; }
double elapsed_ms(const Device&, const std::function<void()>& work) {
  const auto start = std::chrono::steady_clock::now();
  work();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}
struct GpuGraph::State {};
GpuGraph::GpuGraph() = default;
GpuGraph::~GpuGraph() = default;
void GpuGraph::replay() {}
std::unique_ptr<GpuGraph> record_gpu_graph(const Device&, const std::function<void()>&) {
  throw Error("this build of VoxMamba has no CUDA backend: there are no CUDA graphs");
}
void initialize_cuda() { throw Error("this build of VoxMamba has no CUDA backend (configure with -DVOXMAMBA_CUDA=ON)"); }
}  // namespace voxmamba::kernels
