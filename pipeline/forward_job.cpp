#include "pipeline/forward_job.h"

#include <chrono>

#include "io/npy.h"
#include "pipeline/model_store.h"
#include "pipeline/output_paths.h"

namespace voxmamba::pipeline {

ForwardResult run_forward(const ForwardRequest& request) {
  if (same_file(request.output, request.input) || same_file(request.output, request.weights)) {
    throw Error(request.output, "output path equals an input path; refusing to overwrite it");
  }
  require_writable_folder(request.output);
  const Device device = choose_device(request.device);
  const DType precision = choose_precision(request.precision, device);
  // The input first: it is small and cheap to check, the model may be hundreds of MB.
  const Tensor input = io::read_npy(request.input);
  if (input.dtype() != DType::f32) {
    throw Error(request.input, std::string("input must be float32, got ") + dtype_name(input.dtype()));
  }
  if (count_non_finite(input) > 0) throw Error(request.input, "holds NaN or infinite values");
  const auto model = load_model_file(request.weights, device, precision);
  try {
    model->check_input_shape(input.shape());
  } catch (const Error& error) {
    throw Error(request.input, error.what());
  }
  const auto start = std::chrono::steady_clock::now();
  const Tensor logits = model->forward(input.to(device)).to(Device::cpu());
  require_finite_output(logits, precision);
  ForwardResult result;
  result.device = device;
  result.precision = precision;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.output_shape = shape_string(logits.shape());
  io::write_npy(request.output, logits);
  return result;
}

}  // namespace voxmamba::pipeline
