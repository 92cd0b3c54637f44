#pragma once
// The network's parameters by name, in the PyTorch layout of network.md: the one list that
// initialisation, loading checks and parameter counts are all derived from.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "models/network_config.h"

namespace voxmamba::models {

// How a freshly created model fills a tensor (network.md, "Initialisation as in Mamba").
enum class InitRule {
  Uniform,      // U(-bound, bound): Kaiming-uniform weights and their biases (PyTorch's default)
  Ones,         // norm weights, Mamba's D
  Zeros,        // norm biases, the deformable offset head's pw
  ALog,         // A_log[e, s] = log(s + 1)
  DtBias,       // softplus^-1 of dt drawn log-uniformly in [1e-3, 1e-1]
};

struct ParameterSpec {
  std::string name;
  Shape shape;
  InitRule init = InitRule::Uniform;
  double bound = 0.0;  // for Uniform
};

using ParameterMap = std::map<std::string, Tensor>;

std::vector<ParameterSpec> parameter_specs(const NetworkConfig& config);

// Seeded: the same config and seed give bit-identical tensors on every machine.
ParameterMap initialize_parameters(const NetworkConfig& config, std::uint64_t seed);

// Replaces the zero-initialised deformable offset heads (".../offset/pw/...") with seeded
// uniform values in [-scale, scale], so that tests and parity checks exercise the deformable
// sampling path with fractional offsets instead of the plain conv it starts as.
void randomize_offset_heads(ParameterMap& parameters, double scale, std::uint64_t seed);

// Throws Error naming the first missing, extra or mis-shaped tensor (or a non-float32 one, or
// one holding NaN or infinity: a diverged training run, a corrupt file).
void check_parameters(const NetworkConfig& config, const ParameterMap& parameters);

// Module name of a parameter for per-module counts: "encoder/stem", "encoder/stages/2",
// "decoder/dec1", ...
std::string module_of(const std::string& parameter_name);
std::int64_t parameter_count(const NetworkConfig& config);

}  // namespace voxmamba::models
