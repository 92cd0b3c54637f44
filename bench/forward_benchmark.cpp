// Forward benchmark of VoxMambaNet (CPU, or CUDA fp32) on seeded random weights. Prints one JSON object:
// config, input size, threads, GEMM backend, every timing, the median, and GFLOP/s from
// the analytic FLOP count (multiply-add = 2) of the network at that size.
// Usage: voxmamba_forward_benchmark [--config small|base] [--size 64] [--repeats 3]
//        [--threads N] [--classes 3] [--device cpu|cuda] [--profile 1]
// --profile 1 adds one more pass with per-op timing (each op waits for the device, so the
// sum exceeds the median) as "op_ms", and the GPU memory high-water mark.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench/flop_count.h"
#include "core/thread_pool.h"
#include "kernels/backend.h"
#include "kernels/cpu/gemm.h"
#include "kernels/ops.h"
#include "pipeline/model_store.h"
#include "models/voxmamba_net.h"

int main(int argc, char** argv) {
  using namespace voxmamba;
  std::string config_name = "small", device_name = "cpu";
  int size = 64, repeats = 3, threads = 0, classes = 3, profile = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--config") config_name = argv[i + 1];
    else if (flag == "--size") size = std::atoi(argv[i + 1]);
    else if (flag == "--repeats") repeats = std::atoi(argv[i + 1]);
    else if (flag == "--threads") threads = std::atoi(argv[i + 1]);
    else if (flag == "--classes") classes = std::atoi(argv[i + 1]);
    else if (flag == "--device") device_name = argv[i + 1];
    else if (flag == "--profile") profile = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  if (repeats < 1 || size < 16 || size % 16 != 0) {
    std::fprintf(stderr, "--repeats must be >= 1 and --size a positive multiple of 16\n");
    return 2;
  }
  try {
    if (threads > 0) set_thread_count(threads);
    const models::NetworkConfig config = models::preset_config(config_name, classes);
    const Device device = pipeline::choose_device(device_name);
    const models::VoxMambaNet net(config, models::initialize_parameters(config, 1), device);
    Tensor host_input = Tensor::empty({1, size, size, size, config.in_channels});
    for (std::int64_t i = 0; i < host_input.numel(); ++i) {
      host_input.data<float>()[i] = static_cast<float>((i * 7919) % 1000) / 500.0f - 1.0f;
    }
    const Tensor input = host_input.to(device);
    net.forward(input);  // warm-up: first-touch page faults, BLAS buffers, the device caches
    kernels::synchronize(device);
    std::vector<double> ms;
    for (int r = 0; r < repeats; ++r) {
      const auto start = std::chrono::steady_clock::now();
      net.forward(input);
      kernels::synchronize(device);
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    }
    std::vector<double> sorted = ms;
    std::sort(sorted.begin(), sorted.end());
    const double median = sorted[sorted.size() / 2];
    const double flops = bench::forward_flops(config, size);
    std::printf("{\"benchmark\": \"forward\", \"device\": \"%s\", \"precision\": \"fp32\", \"config\": \"%s\", "
                "\"input\": [1, %d, %d, %d, %d], \"threads\": %d, \"gemm\": \"%s\", \"repeats\": %d, \"ms\": [",
                device.name().c_str(), config_name.c_str(), size, size, size, config.in_channels,
                thread_pool().size(), device.is_cpu() ? kernels::cpu::gemm_backend_name() : "cublas", repeats);
    for (std::size_t i = 0; i < ms.size(); ++i) std::printf("%s%.1f", i ? ", " : "", ms[i]);
    std::printf("], \"median_ms\": %.1f, \"gflop\": %.2f, \"gflop_per_s\": %.1f", median, flops / 1e9,
                flops / 1e9 / (median / 1e3));
    if (!device.is_cpu()) {
      std::printf(", \"peak_gpu_memory_gib\": %.2f", static_cast<double>(kernels::cuda_peak_memory_bytes()) / (1 << 30));
    }
    if (profile) {
      kernels::reset_op_profile();
      kernels::set_op_profiling(true);
      net.forward(input);
      kernels::set_op_profiling(false);
      const auto times = kernels::op_profile();
      std::printf(", \"op_ms\": {");
      bool first = true;
      for (int op = 0; op < static_cast<int>(kernels::Op::Count); ++op) {
        if (times[op].calls == 0) continue;
        std::printf("%s\"%s\": %.2f", first ? "" : ", ", kernels::op_name(static_cast<kernels::Op>(op)),
                    times[op].milliseconds);
        first = false;
      }
      std::printf("}");
    }
    std::printf("}\n");
  } catch (const std::exception& error) {
    std::fprintf(stderr, "voxmamba_forward_benchmark: error: %s\n", error.what());
    return 1;
  }
  return 0;
}
