#include "pipeline/forward_job.h"

#include <chrono>
#include <filesystem>

#include "io/npy.h"
#include "pipeline/model_store.h"

namespace voxmamba::pipeline {

namespace {

// True when `a` and `b` name the same file: same spelling, the same existing file (links
// included), or the same location once "." / ".." / symlinks are resolved.
bool same_file(const std::string& a, const std::string& b) {
  if (a == b) return true;
  std::error_code error;
  if (std::filesystem::equivalent(a, b, error)) return true;
  const std::filesystem::path canonical_a = std::filesystem::weakly_canonical(a, error);
  if (error) return false;
  const std::filesystem::path canonical_b = std::filesystem::weakly_canonical(b, error);
  return !error && canonical_a == canonical_b;
}

}  // namespace

ForwardResult run_forward(const ForwardRequest& request) {
  if (same_file(request.output, request.input) || same_file(request.output, request.weights)) {
    throw Error(request.output, "output path equals an input path; refusing to overwrite it");
  }
  const std::filesystem::path output_folder = std::filesystem::path(request.output).parent_path();
  if (!output_folder.empty() && !std::filesystem::is_directory(output_folder)) {
    throw Error(request.output, "output folder does not exist");
  }
  const Device device = choose_device(request.device);
  // The input first: it is small and cheap to check, the model may be hundreds of MB.
  const Tensor input = io::read_npy(request.input);
  if (input.dtype() != DType::f32) {
    throw Error(request.input, std::string("input must be float32, got ") + dtype_name(input.dtype()));
  }
  const auto model = load_model_file(request.weights, device);
  try {
    model->check_input_shape(input.shape());
  } catch (const Error& error) {
    throw Error(request.input, error.what());
  }
  const auto start = std::chrono::steady_clock::now();
  const Tensor logits = model->forward(input.to(device)).to(Device::cpu());
  ForwardResult result;
  result.device = device;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.output_shape = shape_string(logits.shape());
  io::write_npy(request.output, logits);
  return result;
}

}  // namespace voxmamba::pipeline
