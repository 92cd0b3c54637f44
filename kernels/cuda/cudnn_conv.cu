// cuDNN's legacy convolution API, which cuDNN 9 still ships (libcudnn_cnn): one descriptor set
// and one algorithm per distinct shape, chosen once by cudnnFindConvolutionForwardAlgorithmEx
// (it times every algorithm on the real buffers) and cached for the fixed-shape patch
// forward that follows.
#include "kernels/cuda/cudnn_conv.cuh"

#ifdef VOXMAMBA_HAVE_CUDNN
#include <cudnn.h>

#include <array>
#include <map>
#include <mutex>
#include <tuple>

#include "kernels/cuda/cuda_common.cuh"

namespace voxmamba::kernels::cuda {
namespace {

void check_cudnn(cudnnStatus_t status, const char* what) {
  if (status != CUDNN_STATUS_SUCCESS) throw Error(std::string("cuDNN: ") + what + ": " + cudnnGetErrorString(status));
}

cudnnHandle_t handle() {
  static cudnnHandle_t instance = nullptr;
  static std::once_flag once;
  std::call_once(once, [] { check_cudnn(cudnnCreate(&instance), "create a handle"); });
  return instance;
}

// The packed weight [taps, cin, cout] as cuDNN's NDHWC filter [cout, taps, cin].
template <typename T>
__global__ void filter_from_packed_kernel(const T* packed, T* filter, std::int64_t taps, std::int64_t cin,
                                          std::int64_t cout) {
  const std::int64_t total = taps * cin * cout;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t ci = i % cin, tap = (i / cin) % taps, co = i / (cin * taps);
    filter[i] = packed[(tap * cin + ci) * cout + co];
  }
}

struct Plan {
  bool supported = false;
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  cudnnConvolutionFwdAlgo_t algorithm{};
  std::size_t workspace = 0;
};

using Key = std::tuple<int, std::array<std::int64_t, 5>, std::int64_t, int, int, int, int, int>;

// NCDHW dimensions of a channels-last tensor, as cuDNN's Nd descriptors want them.
std::array<int, 5> ncdhw(const Shape& s) {
  return {static_cast<int>(s[0]), static_cast<int>(s[4]), static_cast<int>(s[1]), static_cast<int>(s[2]),
          static_cast<int>(s[3])};
}

Plan make_plan(const Tensor& x, const Tensor& filter, Tensor& y, const ConvParams& p) {
  Plan plan;
  const cudnnDataType_t type = x.dtype() == DType::bf16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
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
    filter_from_packed_kernel<T><<<blocks_for(weight.numel()), kThreads>>>(ptr_as<T>(weight), mutable_ptr_as<T>(filter),
                                                                          taps, cin, cout);
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
