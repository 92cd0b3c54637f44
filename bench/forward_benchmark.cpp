// Forward benchmark of VoxMambaNet on the CPU or a GPU. Prints one JSON object: config,
// input, device, precision, every timing, the median, TFLOP/s from the analytic FLOP count
// (multiply-add = 2), and on a GPU the peak memory of the timed passes and the host's time
// to queue one forward ("host_enqueue_ms").
// Usage: voxmamba_forward_benchmark [--config small|base] [--size 64] [--repeats 3]
//        [--threads N] [--classes 3] [--device cpu|cuda] [--precision auto|fp32|bf16|fp16]
//        [--model FILE.h5] [--input FILE.npy] [--offset-scale S] [--profile 1] [--graph 0|1]
// --model and --input time a given model file and input array (tools/bench_twin.py passes
// the twin's, so both sides see the same weights and input); otherwise seeded random
// weights and a fixed pattern of --size^3 are used; their deformable offset heads are zero, as
// network.md initialises them, unless --offset-scale S draws them in [-S, S] (as `voxmamba
// init --offset-scale` does): the deformable convs' memory traffic depends on the offsets, and
// a trained model's are not zero. Times are CUDA events on a GPU, after
// one warm-up pass (which also picks the cuDNN algorithms), whose wall time is
// "first_forward_ms". --profile 1 adds one pass in
// which every op waits for the device, timed per op and per op class, as "op_ms" and
// "class_ms"; its total exceeds the median. --graph 1 (GPU) times the forward as the sliding
// window runs it: recorded once as a CUDA graph (models/graphed_forward.h), then each pass
// copies the input in, replays, and copies the logits out.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "bench/flop_count.h"
#include "core/thread_pool.h"
#include "io/npy.h"
#include "kernels/backend.h"
#include "kernels/cpu/gemm.h"
#include "kernels/ops.h"
#include "models/graphed_forward.h"
#include "models/voxmamba_net.h"
#include "pipeline/model_store.h"

namespace {

// The classes the issue asks time for.
const char* op_class(const std::string& label) {
  if (label.rfind("conv3d_dense", 0) == 0 || label == "conv_transpose3d" || label.rfind("linear", 0) == 0) {
    return "dense_convs_and_linear";
  }
  if (label == "conv3d_depthwise" || label == "deform_dwconv3d") return "depthwise_and_deformable";
  if (label == "selective_scan" || label == "causal_conv1d") return "scans";
  if (label == "layer_norm" || label == "instance_norm") return "norms";
  return "rest";
}

// --precision's spelling of an activation type.
const char* precision_label(voxmamba::DType type) {
  return type == voxmamba::DType::bf16 ? "bf16" : (type == voxmamba::DType::f16 ? "fp16" : "fp32");
}

}  // namespace

int main(int argc, char** argv) {
  using namespace voxmamba;
  std::string config_name = "small", device_name = "cpu", precision_name = "auto", model_path, input_path;
  int size = 64, repeats = 3, threads = 0, classes = 3, profile = 0, graph = 0;
  double offset_scale = 0.0;
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "%s needs a value\n", flag.c_str());
      return 2;
    }
    const char* value = argv[i + 1];
    if (flag == "--config") config_name = value;
    else if (flag == "--size") size = std::atoi(value);
    else if (flag == "--repeats") repeats = std::atoi(value);
    else if (flag == "--threads") threads = std::atoi(value);
    else if (flag == "--classes") classes = std::atoi(value);
    else if (flag == "--device") device_name = value;
    else if (flag == "--precision") precision_name = value;
    else if (flag == "--model") model_path = value;
    else if (flag == "--input") input_path = value;
    else if (flag == "--profile") profile = std::atoi(value);
    else if (flag == "--graph") graph = std::atoi(value);
    else if (flag == "--offset-scale") {
      char* end = nullptr;
      offset_scale = std::strtod(value, &end);
      if (end == value || *end != '\0') offset_scale = -1.0;  // not a number: refused below
    }
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  if (repeats < 1 || (input_path.empty() && (size < 16 || size % 16 != 0))) {
    std::fprintf(stderr, "--repeats must be >= 1 and --size a positive multiple of 16\n");
    return 2;
  }
  if (!(offset_scale >= 0.0 && offset_scale <= 10.0) || (offset_scale > 0.0 && !model_path.empty())) {
    std::fprintf(stderr, "--offset-scale must be in [0, 10], and is for the seeded weights, not --model\n");
    return 2;
  }
  try {
    if (threads > 0) set_thread_count(threads);
    const Device device = pipeline::choose_device(device_name);
    const DType precision = pipeline::choose_precision(precision_name, device);
    std::unique_ptr<models::VoxMambaNet> net;
    if (!model_path.empty()) {
      net = pipeline::load_model_file(model_path, device, precision);
      config_name = model_path;
    } else {
      const models::NetworkConfig config = models::preset_config(config_name, classes);
      models::ParameterMap parameters = models::initialize_parameters(config, 1);
      if (offset_scale > 0.0) models::randomize_offset_heads(parameters, offset_scale, 1);
      net = std::make_unique<models::VoxMambaNet>(config, std::move(parameters), device, precision);
    }
    const models::NetworkConfig& config = net->config();
    Tensor host_input;
    if (!input_path.empty()) {
      host_input = io::read_npy(input_path);
      net->check_input_shape(host_input.shape());
    } else {
      host_input = Tensor::empty({1, size, size, size, config.in_channels});
      for (std::int64_t i = 0; i < host_input.numel(); ++i) {
        host_input.data<float>()[i] = static_cast<float>((i * 7919) % 1000) / 500.0f - 1.0f;
      }
    }
    const Shape& shape = host_input.shape();
    const Tensor input = host_input.to(device);
    if (graph && device.is_cpu()) throw Error("--graph 1 records CUDA graphs: it needs --device cuda");
    models::GraphedForward forward(*net, graph != 0);
    // Warm-up: page faults, BLAS buffers, cuDNN algorithm search, the device caches; with
    // --graph 1 also the recording. Its wall time is what a fresh process pays before the
    // first result (`voxmamba segment` pays it once per run), so it is reported too.
    const auto warmup_start = std::chrono::steady_clock::now();
    forward.forward(input);
    kernels::synchronize(device);
    const double first_forward_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - warmup_start).count();
    kernels::reset_cuda_peak_memory();
    std::vector<double> ms, host_ms;
    for (int r = 0; r < repeats; ++r) {
      ms.push_back(kernels::elapsed_ms(device, [&] {
        const auto start = std::chrono::steady_clock::now();
        forward.forward(input);
        host_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
      }));
    }
    std::sort(host_ms.begin(), host_ms.end());
    std::vector<double> sorted = ms;
    std::sort(sorted.begin(), sorted.end());
    const double median = sorted[sorted.size() / 2];
    // The analytic count assumes a cube; other shapes scale it by their voxel count.
    const double cube = static_cast<double>(shape[1]);
    const double flops = bench::forward_flops(config, static_cast<int>(shape[1])) *
                         (static_cast<double>(shape[2]) * static_cast<double>(shape[3]) / (cube * cube)) *
                         static_cast<double>(shape[0]);
    std::printf(
        "{\"benchmark\": \"forward\", \"device\": \"%s\", \"precision\": \"%s\", \"config\": \"%s\", "
        "\"input\": [%lld, %lld, %lld, %lld, %lld], \"threads\": %d, \"gemm\": \"%s\", \"repeats\": %d, "
        "\"timer\": \"%s\", \"ms\": [",
        device.name().c_str(), precision_label(precision), config_name.c_str(),
        static_cast<long long>(shape[0]), static_cast<long long>(shape[1]), static_cast<long long>(shape[2]),
        static_cast<long long>(shape[3]), static_cast<long long>(shape[4]), thread_pool().size(),
        device.is_cpu() ? kernels::cpu::gemm_backend_name().c_str() : "cublas+cudnn", repeats,
        device.is_cpu() ? "wall clock" : "cuda events");
    for (std::size_t i = 0; i < ms.size(); ++i) std::printf("%s%.2f", i ? ", " : "", ms[i]);
    std::printf(
        "], \"median_ms\": %.2f, \"min_ms\": %.2f, \"first_forward_ms\": %.1f, \"gflop\": %.2f, "
        "\"tflop_per_s\": %.2f",
        median, sorted[0], first_forward_ms, flops / 1e9, flops / 1e12 / (median / 1e3));
    if (model_path.empty()) std::printf(", \"offset_scale\": %g", offset_scale);
    if (!device.is_cpu()) {
      // How long the host takes to queue a forward (the median): with it far below median_ms,
      // the GPU never waits for the host once the first kernels are queued.
      std::printf(", \"cuda_graph\": %s, \"host_enqueue_ms\": %.2f", graph ? "true" : "false",
                  host_ms[host_ms.size() / 2]);
      std::printf(", \"peak_gpu_memory_gib\": %.3f, \"libraries\": \"%s\"",
                  static_cast<double>(kernels::cuda_peak_memory_bytes()) / (1 << 30),
                  kernels::gpu_library_versions().c_str());
    }
    if (profile) {
      kernels::reset_op_profile();
      kernels::set_op_profiling(true);
      net->forward(input);
      kernels::set_op_profiling(false);
      std::map<std::string, double> by_class;
      std::printf(", \"op_ms\": {");
      bool first = true;
      for (const auto& [label, time] : kernels::op_profile()) {
        std::printf("%s\"%s\": %.3f", first ? "" : ", ", label.c_str(), time.milliseconds);
        by_class[op_class(label)] += time.milliseconds;
        first = false;
      }
      std::printf("}, \"class_ms\": {");
      first = true;
      for (const auto& [name, milliseconds] : by_class) {
        std::printf("%s\"%s\": %.3f", first ? "" : ", ", name.c_str(), milliseconds);
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
