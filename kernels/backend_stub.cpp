// The build without CUDA: no devices, and a clear error when one is asked for.
#include "core/error.h"
#include "kernels/backend.h"

namespace voxmamba::kernels {
bool cuda_built() { return false; }
int cuda_device_count() { return 0; }
void synchronize(const Device&) {}
std::size_t cuda_peak_memory_bytes() { return 0; }
void initialize_cuda() { throw Error("this build of VoxMamba has no CUDA backend (configure with -DVOXMAMBA_CUDA=ON)"); }
}  // namespace voxmamba::kernels
