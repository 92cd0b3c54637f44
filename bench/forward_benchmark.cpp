// CPU forward benchmark of VoxMambaNet on seeded random weights. Prints one JSON object:
// config, input size, threads, GEMM backend, every timing, the median, and GFLOP/s from
// the analytic FLOP count (multiply-add = 2) of the network at that size.
// Usage: voxmamba_forward_benchmark [--config small|base] [--size 64] [--repeats 3]
//        [--threads N] [--classes 3]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench/flop_count.h"
#include "core/thread_pool.h"
#include "kernels/cpu/gemm.h"
#include "models/voxmamba_net.h"

int main(int argc, char** argv) {
  using namespace voxmamba;
  std::string config_name = "small";
  int size = 64, repeats = 3, threads = 0, classes = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--config") config_name = argv[i + 1];
    else if (flag == "--size") size = std::atoi(argv[i + 1]);
    else if (flag == "--repeats") repeats = std::atoi(argv[i + 1]);
    else if (flag == "--threads") threads = std::atoi(argv[i + 1]);
    else if (flag == "--classes") classes = std::atoi(argv[i + 1]);
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
    const models::VoxMambaNet net(config, models::initialize_parameters(config, 1));
    Tensor input = Tensor::empty({1, size, size, size, config.in_channels});
    for (std::int64_t i = 0; i < input.numel(); ++i) input.data<float>()[i] = static_cast<float>((i * 7919) % 1000) / 500.0f - 1.0f;
    net.forward(input);  // warm-up: first-touch page faults, OpenBLAS buffers
    std::vector<double> ms;
    for (int r = 0; r < repeats; ++r) {
      const auto start = std::chrono::steady_clock::now();
      net.forward(input);
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    }
    std::vector<double> sorted = ms;
    std::sort(sorted.begin(), sorted.end());
    const double median = sorted[sorted.size() / 2];
    const double flops = bench::forward_flops(config, size);
    std::printf("{\"benchmark\": \"cpu_forward\", \"config\": \"%s\", \"input\": [1, %d, %d, %d, %d], "
                "\"threads\": %d, \"gemm\": \"%s\", \"repeats\": %d, \"ms\": [",
                config_name.c_str(), size, size, size, config.in_channels, thread_pool().size(),
                kernels::cpu::gemm_backend_name(), repeats);
    for (std::size_t i = 0; i < ms.size(); ++i) std::printf("%s%.1f", i ? ", " : "", ms[i]);
    std::printf("], \"median_ms\": %.1f, \"gflop\": %.2f, \"gflop_per_s\": %.1f}\n", median, flops / 1e9,
                flops / 1e9 / (median / 1e3));
  } catch (const std::exception& error) {
    std::fprintf(stderr, "voxmamba_forward_benchmark: error: %s\n", error.what());
    return 1;
  }
  return 0;
}
