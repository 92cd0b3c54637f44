#include "pipeline/model_store.h"

#include <sys/stat.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "io/tensor_file.h"
#include "kernels/backend.h"
#include "models/network_config_json.h"
#include "models/parameters.h"
#include "pipeline/inference_settings.h"

namespace voxmamba::pipeline {
namespace {

bool file_exists(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0;
}

// Errors from models/ name the tensor but not the file; put the file in front.
template <typename F> auto with_file(const std::string& path, F body) -> decltype(body()) {
  try {
    return body();
  } catch (const Error& error) {
    const std::string message = error.what();
    if (message.rfind(path + ":", 0) == 0) throw;
    throw Error(path, message);
  }
}

io::TensorFile to_tensor_file(const models::NetworkConfig& config, const models::ParameterMap& parameters,
                              const CreateOptions& options) {
  io::TensorFile file;
  std::string json = models::network_config_to_json(config);
  nlohmann::json object = nlohmann::json::parse(json);
  if (options.patch_size[0] > 0) object["patch_size"] = options.patch_size;
  if (options.spacing[0] > 0) object["spacing"] = options.spacing;
  json = object.dump(2);
  file.config_json = with_default_inference_settings(json, config.num_classes);
  inference_settings_from_json(file.config_json);  // rejects a bad --patch-size before writing
  for (const auto& [name, tensor] : parameters) file.tensors.emplace(name, tensor);
  return file;
}

}  // namespace

models::NetworkConfig resolve_config(const std::string& preset_or_file, int num_classes) {
  if (preset_or_file == "small" || preset_or_file == "base") {
    if (num_classes <= 0) throw Error("--classes is required with the '" + preset_or_file + "' config");
    return models::preset_config(preset_or_file, num_classes);
  }
  std::ifstream in(preset_or_file);
  if (!in) throw Error(preset_or_file, "no such config file (expected small, base or a JSON file)");
  std::stringstream text;
  text << in.rdbuf();
  return with_file(preset_or_file, [&] {
    models::NetworkConfig config = models::network_config_from_json(text.str());
    if (num_classes > 0) config.num_classes = num_classes;
    models::validate(config);
    return config;
  });
}

void create_model_file(const std::string& path, const models::NetworkConfig& config, const CreateOptions& options) {
  if (!options.overwrite && file_exists(path)) throw Error(path, "already exists (use --force to replace it)");
  models::ParameterMap parameters = models::initialize_parameters(config, options.seed);
  if (options.offset_scale > 0) models::randomize_offset_heads(parameters, options.offset_scale, options.seed);
  io::write_tensor_file(path, to_tensor_file(config, parameters, options));
}

ModelDescription describe_model_file(const std::string& path) {
  const io::TensorFile file = io::read_tensor_file(path);
  return with_file(path, [&] {
    ModelDescription description;
    description.config_json = file.config_json;
    description.config = models::network_config_from_json(file.config_json);
    models::check_parameters(description.config, file.tensors);
    for (const auto& [name, tensor] : file.tensors) {
      description.modules[models::module_of(name)] += tensor.numel();
      description.parameters += tensor.numel();
    }
    return description;
  });
}

LoadedModel load_model(const std::string& path, Device device, DType activations) {
  const io::TensorFile file = io::read_tensor_file(path);
  return with_file(path, [&] {
    const models::NetworkConfig config = models::network_config_from_json(file.config_json);
    return LoadedModel{std::make_unique<models::VoxMambaNet>(config, file.tensors, device, activations),
                       file.config_json};
  });
}

std::unique_ptr<models::VoxMambaNet> load_model_file(const std::string& path, Device device, DType activations) {
  return load_model(path, device, activations).net;
}

DType choose_precision(const std::string& text, Device device) {
  if (text == "auto") return device.is_cpu() ? DType::f32 : DType::bf16;
  if (text == "fp32") return DType::f32;
  if (text == "bf16" || text == "fp16") {
    if (device.is_cpu()) throw Error("--precision " + text + " needs a GPU; the CPU computes in fp32");
    return text == "bf16" ? DType::bf16 : DType::f16;
  }
  throw Error("unknown precision '" + text + "' (expected auto, fp32, bf16 or fp16)");
}

void require_finite_output(const Tensor& values, DType precision) {
  const std::int64_t bad = count_non_finite(values);
  if (bad == 0) return;
  std::string message = "the network produced " + std::to_string(bad) + " NaN or infinite output values";
  if (precision == DType::f16) {
    message += ": float16 activations overflowed (above 65504); run with --precision bf16 or fp32";
  } else {  // inputs and weights are checked when read, so an activation left float's range
    message += " in " + std::string(dtype_name(precision)) + " from finite input and weights";
  }
  throw Error(message);
}

Device choose_device(const std::string& text) {
  if (text == "auto") {
    if (kernels::cuda_device_count() == 0) return Device::cpu();
    kernels::initialize_cuda();
    return Device::cuda(0);
  }
  const Device device = parse_device(text);
  if (device.is_cpu()) return device;
  kernels::initialize_cuda();
  if (device.index >= kernels::cuda_device_count()) {
    throw Error("device " + device.name() + " does not exist (" + std::to_string(kernels::cuda_device_count()) +
                " GPU(s) present)");
  }
  return device;
}

}  // namespace voxmamba::pipeline
