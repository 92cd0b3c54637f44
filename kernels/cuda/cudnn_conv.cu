// Dense convs through cuDNN, one plan per distinct shape, chosen once and cached for the
// fixed-shape patch forward that follows:
// - first the graph (backend) API: a one-node operation graph, run by the highest-ranked
//   engine configuration of cuDNN's heuristics (mode B by default) that is deterministic and
//   supports the shape.
//   Its engines include the NDHWC tensor-core kernels that PyTorch reaches; the legacy API's
//   best ran the 48->48 3^3 conv at 128^3 in 2.0 ms on the H200, PyTorch 1.1 ms.
//   By default the choice is not timed: with engines close in speed, timing picked different
//   ones in different runs, and `forward` must give the same bytes every run (they sum in
//   different orders). VOXMAMBA_CUDNN_CHOICE selects the heuristics or timing (engine_choice);
// - else the legacy API (cudnnFindConvolutionForwardAlgorithmEx), which cuDNN 9 still ships,
//   also for grouped convs.
#include "kernels/cuda/cudnn_conv.cuh"

#ifdef VOXMAMBA_HAVE_CUDNN
#include <cudnn.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <limits>
#include <string>
#include <map>
#include <memory>
#include <vector>
#include <mutex>
#include <tuple>

#include "kernels/backend.h"
#include "kernels/cuda/cuda_common.cuh"

namespace voxmamba::kernels::cuda {
namespace {

void check_cudnn(cudnnStatus_t status, const char* what) {
  if (status != CUDNN_STATUS_SUCCESS) throw Error(std::string("cuDNN: ") + what + ": " + cudnnGetErrorString(status));
}

cudnnHandle_t handle() {
  static cudnnHandle_t instance = nullptr;
  static std::once_flag once;
  std::call_once(once, [] {
    check_cudnn(cudnnCreate(&instance), "create a handle");
    check_cudnn(cudnnSetStream(instance, stream()), "set the stream");
  });
  return instance;
}

// The packed weight [taps, cin, cout] as cuDNN's NDHWC filter [cout, taps, cin]: per tap, a
// [cin, cout] matrix transposed through a 32 x 32 tile of shared memory, so that reads and
// writes both run along rows. Element by element, the reads strode by cout: the 22
// conversions of a base 128^3 forward took 0.41 ms on the H200 (ncu), tiled 0.17 ms.
constexpr int kTransposeTile = 32, kTransposeRows = 8, kTransposeThreads = kTransposeTile * kTransposeRows;

template <typename T>
__global__ void __launch_bounds__(kTransposeThreads)
    filter_from_packed_kernel(const T* __restrict__ packed, T* __restrict__ filter, int taps, int cin,
                              int cout) {
  __shared__ T tile[kTransposeTile][kTransposeTile + 1];  // +1: the column reads hit distinct banks
  const int tap = blockIdx.z, co0 = blockIdx.x * kTransposeTile, ci0 = blockIdx.y * kTransposeTile;
  const T* from = packed + static_cast<std::int64_t>(tap) * cin * cout;
  for (int r = threadIdx.y; r < kTransposeTile; r += kTransposeRows) {
    const int ci = ci0 + r, co = co0 + threadIdx.x;
    if (ci < cin && co < cout) tile[r][threadIdx.x] = from[static_cast<std::int64_t>(ci) * cout + co];
  }
  __syncthreads();
  for (int r = threadIdx.y; r < kTransposeTile; r += kTransposeRows) {
    const int co = co0 + r, ci = ci0 + threadIdx.x;
    if (ci < cin && co < cout)
      filter[(static_cast<std::int64_t>(co) * taps + tap) * cin + ci] = tile[threadIdx.x][r];
  }
}

struct Plan {
  bool supported = false;
  // Legacy API
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  cudnnConvolutionFwdAlgo_t algorithm{};
  // Graph API: an execution plan, used instead of the legacy algorithm when defined.
  cudnnBackendDescriptor_t graph_plan = nullptr;
  std::size_t workspace = 0;
};

// Unique ids of the graph's tensors, bound to pointers in each call's variant pack.
constexpr std::int64_t kX = 'x', kW = 'w', kY = 'y';
constexpr std::size_t kMaxWorkspace = std::size_t(1) << 30;  // 1 GiB

// Owns a graph-API (backend) descriptor; released() hands it over.
class Descriptor {
 public:
  explicit Descriptor(cudnnBackendDescriptorType_t type) {
    if (cudnnBackendCreateDescriptor(type, &descriptor_) != CUDNN_STATUS_SUCCESS) descriptor_ = nullptr;
  }
  ~Descriptor() {
    if (descriptor_) cudnnBackendDestroyDescriptor(descriptor_);
  }
  Descriptor(const Descriptor&) = delete;
  Descriptor& operator=(const Descriptor&) = delete;
  cudnnBackendDescriptor_t get() const { return descriptor_; }
  cudnnBackendDescriptor_t released() {
    cudnnBackendDescriptor_t d = descriptor_;
    descriptor_ = nullptr;
    return d;
  }
  // Each step returns false on the first failure; later steps then do nothing.
  template <typename V> bool set(cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, std::int64_t count,
                                 const V* values) {
    ok_ = ok_ && descriptor_ &&
          cudnnBackendSetAttribute(descriptor_, name, type, count, values) == CUDNN_STATUS_SUCCESS;
    return ok_;
  }
  bool finalize() {
    ok_ = ok_ && descriptor_ && cudnnBackendFinalize(descriptor_) == CUDNN_STATUS_SUCCESS;
    return ok_;
  }

 private:
  cudnnBackendDescriptor_t descriptor_ = nullptr;
  bool ok_ = true;
};

// A channels-last tensor with logical dims (n, c, d, h, w): NDHWC strides.
bool set_tensor(Descriptor& t, std::int64_t uid, cudnnDataType_t type, std::array<std::int64_t, 5> dims) {
  const std::int64_t c = dims[1], d = dims[2], h = dims[3], w = dims[4];
  const std::array<std::int64_t, 5> strides = {d * h * w * c, 1, h * w * c, w * c, c};
  const std::int64_t alignment = 16;
  t.set(CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type);
  t.set(CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 5, dims.data());
  t.set(CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 5, strides.data());
  t.set(CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid);
  t.set(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &alignment);
  return t.finalize();
}

// Runs a graph-API plan on the given buffers.
cudnnStatus_t execute_graph_plan(cudnnHandle_t h, cudnnBackendDescriptor_t plan, const void* x, const void* w, void* y,
                                 void* workspace) {
  Descriptor pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
  void* pointers[3] = {const_cast<void*>(x), const_cast<void*>(w), y};
  const std::int64_t uids[3] = {kX, kW, kY};
  pack.set(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, 3, pointers);
  pack.set(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, 3, uids);
  pack.set(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace);
  if (!pack.finalize()) return CUDNN_STATUS_BAD_PARAM;
  return cudnnBackendExecute(h, plan, pack.get());
}

// Median of three timed runs (kernels::elapsed_ms, CUDA events) after one warm-up, in ms;
// infinity if a run fails.
template <typename Run> float time_ms(const Device& device, Run&& run) {
  if (!run()) return std::numeric_limits<float>::infinity();
  std::array<double, 3> times{};
  bool ok = true;
  for (double& t : times) t = elapsed_ms(device, [&] { ok = run() && ok; });
  std::sort(times.begin(), times.end());
  return ok ? static_cast<float>(times[1]) : std::numeric_limits<float>::infinity();
}

// How the graph API's engine is chosen: VOXMAMBA_CUDNN_CHOICE = "heuristic-b" (default: the
// highest-ranked deterministic engine of cuDNN's learned heuristics, mode B, the same one
// every run), "heuristic" (the same with the instant mode A), or "timed" (the fastest of the
// first eight deterministic candidates on the real buffers, which may differ from run to run
// when candidates are close in speed, and with it the last bits of the results). Base
// forward at 128^3 on the H200: mode A 60.6 ms (its 48->48 convs at 128^3 1.87 ms each),
// mode B 56.1 ms (1.19 ms), timed 55.8 ms (1.11 ms).
enum class EngineChoice { Heuristic, HeuristicB, Timed };

EngineChoice engine_choice() {
  const char* text = std::getenv("VOXMAMBA_CUDNN_CHOICE");
  const std::string value = text ? text : "heuristic-b";
  if (value == "heuristic") return EngineChoice::Heuristic;
  if (value == "heuristic-b") return EngineChoice::HeuristicB;
  if (value == "timed") return EngineChoice::Timed;
  throw Error("VOXMAMBA_CUDNN_CHOICE must be heuristic, heuristic-b or timed, not '" + value + "'");
}

// True when an engine configuration's engine may give different results from run to run
// (cuDNN's NONDETERMINISTIC numerical note, e.g. split reductions with atomics), or when
// that cannot be read.
bool nondeterministic(cudnnBackendDescriptor_t config) {
  Descriptor engine(CUDNN_BACKEND_ENGINE_DESCRIPTOR);
  cudnnBackendDescriptor_t e = engine.get();
  std::int64_t n = 0;
  if (!e || cudnnBackendGetAttribute(config, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n, &e) !=
                CUDNN_STATUS_SUCCESS) {
    return true;
  }
  std::array<cudnnBackendNumericalNote_t, CUDNN_NUMERICAL_NOTE_TYPE_COUNT> notes{};
  if (cudnnBackendGetAttribute(e, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE, CUDNN_TYPE_NUMERICAL_NOTE,
                               static_cast<std::int64_t>(notes.size()), &n, notes.data()) != CUDNN_STATUS_SUCCESS) {
    return true;
  }
  const auto end = notes.begin() + std::min<std::int64_t>(n, notes.size());
  return std::find(notes.begin(), end, CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC) != end;
}

// cuDNN's name for an activation type (the accumulation is float32 whatever it is).
cudnnDataType_t cudnn_data_type(DType type) {
  return type == DType::bf16 ? CUDNN_DATA_BFLOAT16 : (type == DType::f16 ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT);
}

// The graph-API plan of a groups == 1 conv (see the top of this file), or nullptr when the
// graph API offers none.
cudnnBackendDescriptor_t graph_plan(const Tensor& x, const Tensor& filter, Tensor& y, const ConvParams& p,
                                    std::size_t* workspace_bytes) {
  const cudnnDataType_t type = cudnn_data_type(x.dtype());
  const std::int64_t k = p.kernel;
  Descriptor xt(CUDNN_BACKEND_TENSOR_DESCRIPTOR), wt(CUDNN_BACKEND_TENSOR_DESCRIPTOR), yt(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
  if (!set_tensor(xt, kX, type, {x.dim(0), x.dim(4), x.dim(1), x.dim(2), x.dim(3)}) ||
      !set_tensor(wt, kW, type, {y.dim(4), x.dim(4), k, k, k}) ||  // [cout, taps, cin]: KDHWC
      !set_tensor(yt, kY, type, {y.dim(0), y.dim(4), y.dim(1), y.dim(2), y.dim(3)})) {
    return nullptr;
  }
  Descriptor conv(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR);
  const std::int64_t spatial = 3;
  const cudnnDataType_t compute = CUDNN_DATA_FLOAT;
  const cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  const std::array<std::int64_t, 3> pad = {p.padding, p.padding, p.padding}, stride = {p.stride, p.stride, p.stride},
                                    dilation = {p.dilation, p.dilation, p.dilation};
  conv.set(CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &spatial);
  conv.set(CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &compute);
  conv.set(CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode);
  conv.set(CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, 3, dilation.data());
  conv.set(CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, 3, stride.data());
  conv.set(CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, 3, pad.data());
  conv.set(CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, 3, pad.data());
  Descriptor op(CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR);
  const float alpha = 1.0f, beta = 0.0f;
  cudnnBackendDescriptor_t xd = xt.get(), wd = wt.get(), yd = yt.get(), cd = nullptr;
  if (conv.finalize()) cd = conv.get();
  op.set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &xd);
  op.set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &wd);
  op.set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &yd);
  op.set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cd);
  op.set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_TYPE_FLOAT, 1, &alpha);
  op.set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, CUDNN_TYPE_FLOAT, 1, &beta);
  if (!cd || !op.finalize()) return nullptr;
  Descriptor graph(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
  cudnnHandle_t h = handle();
  cudnnBackendDescriptor_t od = op.get();
  graph.set(CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &od);
  graph.set(CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &h);
  if (!graph.finalize()) return nullptr;
  Descriptor heuristics(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
  const EngineChoice choice = engine_choice();
  const cudnnBackendHeurMode_t heur_mode = choice == EngineChoice::HeuristicB ? CUDNN_HEUR_MODE_B : CUDNN_HEUR_MODE_A;
  cudnnBackendDescriptor_t gd = graph.get();
  heuristics.set(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &gd);
  heuristics.set(CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &heur_mode);
  if (!heuristics.finalize()) return nullptr;
  std::int64_t count = 0;
  if (cudnnBackendGetAttribute(heuristics.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count,
                               nullptr) != CUDNN_STATUS_SUCCESS || count <= 0) {
    return nullptr;
  }
  std::vector<std::unique_ptr<Descriptor>> configs;
  std::vector<cudnnBackendDescriptor_t> raw;
  for (std::int64_t i = 0; i < count; ++i) {
    configs.push_back(std::make_unique<Descriptor>(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR));
    raw.push_back(configs.back()->get());
  }
  std::int64_t returned = 0;
  if (cudnnBackendGetAttribute(heuristics.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, count,
                               &returned, raw.data()) != CUDNN_STATUS_SUCCESS) {
    return nullptr;
  }
  constexpr int kTimedCandidates = 8;
  cudnnBackendDescriptor_t best = nullptr;
  float best_ms = std::numeric_limits<float>::infinity();
  int timed = 0;
  for (std::int64_t i = 0; i < returned && timed < kTimedCandidates; ++i) {  // in the heuristics' order
    if (nondeterministic(raw[i])) continue;
    Descriptor plan(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
    cudnnBackendDescriptor_t config = raw[i];
    plan.set(CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &h);
    plan.set(CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &config);
    if (!plan.finalize()) continue;  // this engine does not support the shape
    std::int64_t bytes = 0, n = 0;
    if (cudnnBackendGetAttribute(plan.get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &n,
                                 &bytes) != CUDNN_STATUS_SUCCESS ||
        bytes < 0 || static_cast<std::size_t>(bytes) > kMaxWorkspace) {
      continue;
    }
    if (choice != EngineChoice::Timed) {
      *workspace_bytes = static_cast<std::size_t>(bytes);
      return plan.released();
    }
    Tensor workspace;
    if (bytes > 0) workspace = Tensor::empty({(bytes + 3) / 4}, DType::f32, x.device());
    const cudnnBackendDescriptor_t candidate = plan.get();
    const float ms = time_ms(x.device(), [&] {
      return execute_graph_plan(h, candidate, x.raw_data(), filter.raw_data(), y.raw_data(), workspace.raw_data()) ==
             CUDNN_STATUS_SUCCESS;
    });
    cudaGetLastError();  // a failed engine must not leave a launch error behind
    ++timed;
    if (ms < best_ms) {
      if (best) cudnnBackendDestroyDescriptor(best);
      best = plan.released();
      best_ms = ms;
      *workspace_bytes = static_cast<std::size_t>(bytes);
    }
  }
  return best;
}

using Key = std::tuple<int, std::array<std::int64_t, 5>, std::int64_t, int, int, int, int, int>;

// NCDHW dimensions of a channels-last tensor, as cuDNN's Nd descriptors want them.
std::array<int, 5> ncdhw(const Shape& s) {
  return {static_cast<int>(s[0]), static_cast<int>(s[4]), static_cast<int>(s[1]), static_cast<int>(s[2]),
          static_cast<int>(s[3])};
}

Plan make_plan(const Tensor& x, const Tensor& filter, Tensor& y, const ConvParams& p) {
  Plan plan;
  if (p.groups == 1) {
    plan.graph_plan = graph_plan(x, filter, y, p, &plan.workspace);
    if (plan.graph_plan) {
      plan.supported = true;
      return plan;
    }
  }
  const cudnnDataType_t type = cudnn_data_type(x.dtype());
  check_cudnn(cudnnCreateTensorDescriptor(&plan.x), "tensor descriptor");
  check_cudnn(cudnnCreateTensorDescriptor(&plan.y), "tensor descriptor");
  check_cudnn(cudnnCreateFilterDescriptor(&plan.w), "filter descriptor");
  check_cudnn(cudnnCreateConvolutionDescriptor(&plan.conv), "convolution descriptor");
  const std::array<int, 5> xs = ncdhw(x.shape()), ys = ncdhw(y.shape());
  check_cudnn(cudnnSetTensorNdDescriptorEx(plan.x, CUDNN_TENSOR_NHWC, type, 5, xs.data()), "input layout");
  check_cudnn(cudnnSetTensorNdDescriptorEx(plan.y, CUDNN_TENSOR_NHWC, type, 5, ys.data()), "output layout");
  const std::array<int, 5> ws = {static_cast<int>(y.dim(4)), static_cast<int>(x.dim(4) / p.groups), p.kernel,
                                 p.kernel, p.kernel};
  check_cudnn(cudnnSetFilterNdDescriptor(plan.w, type, CUDNN_TENSOR_NHWC, 5, ws.data()), "filter layout");
  const std::array<int, 3> pad = {p.padding, p.padding, p.padding}, stride = {p.stride, p.stride, p.stride},
                           dilation = {p.dilation, p.dilation, p.dilation};
  check_cudnn(cudnnSetConvolutionNdDescriptor(plan.conv, 3, pad.data(), stride.data(), dilation.data(),
                                              CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
              "convolution");
  check_cudnn(cudnnSetConvolutionMathType(plan.conv, CUDNN_TENSOR_OP_MATH), "math type");
  check_cudnn(cudnnSetConvolutionGroupCount(plan.conv, p.groups), "groups");
  // Let cuDNN time its algorithms on the real buffers with up to 1 GiB of workspace.
  constexpr std::size_t kSearchWorkspace = std::size_t(1) << 30;
  Tensor workspace = Tensor::empty({static_cast<std::int64_t>(kSearchWorkspace / 4)}, DType::f32, x.device());
  std::array<cudnnConvolutionFwdAlgoPerf_t, CUDNN_CONVOLUTION_FWD_ALGO_COUNT> results{};
  int found = 0;
  const cudnnStatus_t status = cudnnFindConvolutionForwardAlgorithmEx(
      handle(), plan.x, x.raw_data(), plan.w, filter.raw_data(), plan.conv, plan.y, y.raw_data(),
      static_cast<int>(results.size()), &found, results.data(), workspace.raw_data(), kSearchWorkspace);
  if (status != CUDNN_STATUS_SUCCESS) return plan;
  for (int i = 0; i < found; ++i) {
    if (results[i].status == CUDNN_STATUS_SUCCESS) {  // sorted fastest first
      plan.supported = true;
      plan.algorithm = results[i].algo;
      plan.workspace = results[i].memory;
      break;
    }
  }
  return plan;
}

}  // namespace

bool cudnn_available() { return true; }
int cudnn_version() { return static_cast<int>(cudnnGetVersion()); }

bool cudnn_conv3d(const Tensor& x, const Tensor& weight, Tensor& y, const ConvParams& p) {
  static std::mutex mutex;
  static std::map<Key, Plan> plans;
  const std::int64_t taps = weight.dim(0), cin = weight.dim(1), cout = weight.dim(2);
  Tensor filter = Tensor::empty({cout, taps, cin}, weight.dtype(), weight.device());
  with_float_type(weight.dtype(), "conv3d", [&](auto tag) {
    using T = decltype(tag);
    const dim3 grid(static_cast<unsigned int>((cout + kTransposeTile - 1) / kTransposeTile),
                    static_cast<unsigned int>((cin + kTransposeTile - 1) / kTransposeTile),
                    static_cast<unsigned int>(taps));
    filter_from_packed_kernel<T><<<grid, dim3(kTransposeTile, kTransposeRows), 0, stream()>>>(
        ptr_as<T>(weight), mutable_ptr_as<T>(filter), static_cast<int>(taps), static_cast<int>(cin),
        static_cast<int>(cout));
  });
  check_launch("conv3d filter layout");
  std::lock_guard<std::mutex> lock(mutex);
  const Key key{static_cast<int>(x.dtype()), {x.dim(0), x.dim(1), x.dim(2), x.dim(3), x.dim(4)}, cout,
                p.kernel, p.stride, p.padding, p.dilation, p.groups};
  auto found = plans.find(key);
  if (found == plans.end()) found = plans.emplace(key, make_plan(x, filter, y, p)).first;
  const Plan& plan = found->second;
  if (!plan.supported) return false;
  Tensor workspace;
  if (plan.workspace > 0) {
    workspace = Tensor::empty({static_cast<std::int64_t>((plan.workspace + 3) / 4)}, DType::f32, x.device());
  }
  if (plan.graph_plan) {
    check_cudnn(execute_graph_plan(handle(), plan.graph_plan, x.raw_data(), filter.raw_data(), y.raw_data(),
                                   workspace.raw_data()),
                "graph convolution forward");
    return true;
  }
  const float alpha = 1.0f, beta = 0.0f;
  check_cudnn(cudnnConvolutionForward(handle(), &alpha, plan.x, x.raw_data(), plan.w, filter.raw_data(), plan.conv,
                                      plan.algorithm, workspace.raw_data(), plan.workspace, &beta, plan.y,
                                      y.raw_data()),
              "convolution forward");
  return true;
}

}  // namespace voxmamba::kernels::cuda

#else  // built without cuDNN

namespace voxmamba::kernels::cuda {
bool cudnn_available() { return false; }
int cudnn_version() { return 0; }
bool cudnn_conv3d(const Tensor&, const Tensor&, Tensor&, const ConvParams&) { return false; }
}  // namespace voxmamba::kernels::cuda

#endif
