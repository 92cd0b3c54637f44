#pragma once
// Which compute backends this build has, and whether their devices are present.
#include <cstddef>
#include <functional>
#include <string>

#include "core/device.h"

namespace voxmamba::kernels {

bool cuda_built();          // compiled with VOXMAMBA_CUDA
int cuda_device_count();    // 0 when not built or no GPU/driver is present
// Waits for all work queued on `device` (no-op for the CPU); for timing.
void synchronize(const Device& device);
// Peak bytes of GPU memory held by tensors since start (the caching allocator's high-water
// mark, cache excluded); 0 without CUDA.
std::size_t cuda_peak_memory_bytes();
// "cuda X.Y, cudnn N" for the libraries this process loaded (benchmark records); "" without CUDA.
std::string gpu_library_versions();
// Restarts the high-water mark from what is held now (e.g. after a warm-up pass).
void reset_cuda_peak_memory();
// Milliseconds that `work` takes on `device`: CUDA events around it on a GPU (queued work
// included, the host's launch overhead only where it stalls the GPU), the wall clock on the CPU.
double elapsed_ms(const Device& device, const std::function<void()>& work);
// Registers the CUDA allocator with core/ (idempotent). Throws Error when no GPU is usable.
void initialize_cuda();

}  // namespace voxmamba::kernels
