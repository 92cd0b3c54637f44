#include "pipeline/forward_job.h"

#include <chrono>

#include "io/npy.h"
#include "pipeline/model_store.h"

namespace voxmamba::pipeline {

ForwardResult run_forward(const ForwardRequest& request) {
  if (request.output == request.input || request.output == request.weights) {
    throw Error(request.output, "output path equals an input path; refusing to overwrite it");
  }
  if (!request.device.is_cpu()) {
    throw Error("device " + request.device.name() + " is not supported by forward yet (CPU only in this build)");
  }
  const auto model = load_model_file(request.weights);
  const Tensor input = io::read_npy(request.input);
  if (input.dtype() != DType::f32) {
    throw Error(request.input, std::string("input must be float32, got ") + dtype_name(input.dtype()));
  }
  try {
    model->check_input_shape(input.shape());
  } catch (const Error& error) {
    throw Error(request.input, error.what());
  }
  const auto start = std::chrono::steady_clock::now();
  const Tensor logits = model->forward(input);
  ForwardResult result;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.output_shape = shape_string(logits.shape());
  io::write_npy(request.output, logits);
  return result;
}

}  // namespace voxmamba::pipeline
