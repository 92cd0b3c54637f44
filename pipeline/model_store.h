#pragma once
// Model files on disk (network.md, "Weights file"): create a seeded one, describe one, and
// load one into a ready-to-run network. Every error names the file.
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "models/voxmamba_net.h"

namespace voxmamba::pipeline {

struct ModelDescription {
  models::NetworkConfig config;
  std::string config_json;                      // the whole `config` attribute
  std::map<std::string, std::int64_t> modules;  // parameter count per module, by name
  std::int64_t parameters = 0;
};

// "small" / "base" or a path to a JSON file with the network keys of network.md.
// `num_classes` > 0 overrides the file's num_classes.
models::NetworkConfig resolve_config(const std::string& preset_or_file, int num_classes);

struct CreateOptions {
  std::uint64_t seed = 0;
  bool overwrite = false;     // refuse to replace an existing file unless set
  double offset_scale = 0.0;  // > 0: random offset heads (see models::randomize_offset_heads)
  std::array<std::int64_t, 3> patch_size{0, 0, 0};  // d, h, w; zeros: the default (inference_settings.h)
  std::array<double, 3> spacing{0, 0, 0};            // x, y, z mm; zeros: the default
};

// Writes a freshly initialised, seeded model.
void create_model_file(const std::string& path, const models::NetworkConfig& config, const CreateOptions& options);

ModelDescription describe_model_file(const std::string& path);

struct LoadedModel {
  std::unique_ptr<models::VoxMambaNet> net;
  std::string config_json;  // the whole `config` attribute, pipeline fields included
};
// One read of the file: the network, ready on `device` with `activations` (float32, or
// bfloat16 or float16 on a GPU), and its config.
LoadedModel load_model(const std::string& path, Device device = Device::cpu(), DType activations = DType::f32);
std::unique_ptr<models::VoxMambaNet> load_model_file(const std::string& path, Device device = Device::cpu(),
                                                     DType activations = DType::f32);

// The activations' type for --precision: "auto" (bfloat16 on a GPU, float32 on the CPU),
// "fp32", "bf16" or "fp16" (16-bit types are an error on the CPU, which computes in float32
// only). bf16 has float32's range; fp16 rounds 8 times finer but overflows above 65504.
DType choose_precision(const std::string& text, Device device);

// Throws when `values` (the network's logits or probabilities, on the CPU, float32) hold a
// NaN or an infinity. Inputs and weights are checked for them when read, so this is an
// activation past its type's range: in float16 (above 65504) the message says so and names
// bf16 or fp32 as the remedy. Never silently writes a broken label map.
void require_finite_output(const Tensor& values, DType precision);

// "auto" (the first GPU when one is usable, else the CPU), "cpu", "cuda" or "cuda:N"; a GPU
// is initialised here, and asking for one that is not there is an error, never a fallback.
Device choose_device(const std::string& text);

}  // namespace voxmamba::pipeline
