#pragma once
// For tests that need a GPU: VOXMAMBA_REQUIRE_CUDA_DEVICE() skips the test, saying why, on a
// build without CUDA or a machine without a CUDA device (as CI's is), and otherwise
// initialises CUDA. A macro, not a function: GTEST_SKIP returns from the function it is
// written in.
#include <gtest/gtest.h>

#include "kernels/backend.h"

#define VOXMAMBA_REQUIRE_CUDA_DEVICE()                                                                \
  do {                                                                                                \
    if (!::voxmamba::kernels::cuda_built()) GTEST_SKIP() << "built without CUDA (VOXMAMBA_CUDA=OFF)"; \
    if (::voxmamba::kernels::cuda_device_count() == 0) {                                              \
      GTEST_SKIP() << "no CUDA device present on this machine";                                       \
    }                                                                                                 \
    ::voxmamba::kernels::initialize_cuda();                                                           \
  } while (false)
