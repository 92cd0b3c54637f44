#pragma once
// Which compute backends this build has, and whether their devices are present.
#include "core/device.h"

namespace voxmamba::kernels {

bool cuda_built();          // compiled with VOXMAMBA_CUDA
int cuda_device_count();    // 0 when not built or no GPU/driver is present
// Waits for all work queued on `device` (no-op for the CPU); for timing.
void synchronize(const Device& device);
// Registers the CUDA allocator with core/ (idempotent). Throws Error when no GPU is usable.
void initialize_cuda();

}  // namespace voxmamba::kernels
