#include "models/parameters.h"

#include <cmath>
#include <set>

#include "core/error.h"

namespace voxmamba::models {
namespace {

class SpecBuilder {
 public:
  std::vector<ParameterSpec> specs;

  // PyTorch's Conv/Linear default: weight and bias uniform with bound 1/sqrt(fan_in).
  void weight(const std::string& name, Shape shape, std::int64_t fan_in) {
    specs.push_back({name, std::move(shape), InitRule::Uniform, 1.0 / std::sqrt(static_cast<double>(fan_in))});
  }
  void bias(const std::string& name, std::int64_t size, std::int64_t fan_in) { weight(name, {size}, fan_in); }
  void constant(const std::string& name, Shape shape, InitRule rule) { specs.push_back({name, std::move(shape), rule, 0}); }

  void conv(const std::string& prefix, std::int64_t in, std::int64_t out, std::int64_t k, bool with_bias,
            std::int64_t groups = 1) {
    const std::int64_t fan_in = in / groups * k * k * k;
    weight(prefix + "/weight", {out, in / groups, k, k, k}, fan_in);
    if (with_bias) bias(prefix + "/bias", out, fan_in);
  }
  void linear(const std::string& prefix, std::int64_t in, std::int64_t out, bool with_bias) {
    weight(prefix + "/weight", {out, in}, in);
    if (with_bias) bias(prefix + "/bias", out, in);
  }
  void norm(const std::string& prefix, std::int64_t channels) {
    constant(prefix + "/weight", {channels}, InitRule::Ones);
    constant(prefix + "/bias", {channels}, InitRule::Zeros);
  }
  void res_block(const std::string& prefix, std::int64_t in, std::int64_t out) {
    conv(prefix + "/conv1", in, out, 3, false);
    norm(prefix + "/norm1", out);
    conv(prefix + "/conv2", out, out, 3, false);
    norm(prefix + "/norm2", out);
    if (in != out) {
      conv(prefix + "/skip/conv", in, out, 1, false);
      norm(prefix + "/skip/norm", out);
    }
  }
  void depthwise_conv(const std::string& prefix, std::int64_t channels, std::int64_t k) {
    conv(prefix, channels, channels, k, true, channels);
  }
};

void add_dlka(SpecBuilder& b, const std::string& p, std::int64_t C, bool deformable) {
  b.norm(p + "/norm", C);
  b.conv(p + "/proj1", C, C, 1, true);
  b.conv(p + "/proj2", C, C, 1, true);
  for (int k : {5, 7}) {
    const std::string dw = p + "/lka/dw" + std::to_string(k);
    b.depthwise_conv(dw, C, k);
    if (deformable) {
      b.depthwise_conv(dw + "/offset/dw", C, 3);
      // The offset head starts at zero so an untrained deformable conv is the plain one.
      const std::int64_t offsets = 3 * static_cast<std::int64_t>(k) * k * k;
      b.constant(dw + "/offset/pw/weight", {offsets, C, 1, 1, 1}, InitRule::Zeros);
      b.constant(dw + "/offset/pw/bias", {offsets}, InitRule::Zeros);
    }
  }
  b.conv(p + "/lka/pw", C, C, 1, true);
}

void add_mamba(SpecBuilder& b, const std::string& p, const NetworkConfig& config, int stage) {
  const std::int64_t C = config.dims[stage], E = config.inner_channels(stage), R = config.dt_rank(stage),
                     S = config.d_state;
  b.norm(p + "/norm", C);
  b.linear(p + "/in_proj", C, 2 * E, false);
  b.linear(p + "/out_proj", E, C, false);
  for (const char* o : {"fwd", "bwd", "slice"}) {
    const std::string q = p + "/" + o;
    b.weight(q + "/conv1d/weight", {E, 1, config.d_conv}, config.d_conv);
    b.bias(q + "/conv1d/bias", E, config.d_conv);
    b.linear(q + "/x_proj", E, R + 2 * S, false);
    b.weight(q + "/dt_proj/weight", {E, R}, R);  // bound R^-1/2 as in Mamba
    b.constant(q + "/dt_proj/bias", {E}, InitRule::DtBias);
    b.constant(q + "/A_log", {E, S}, InitRule::ALog);
    b.constant(q + "/D", {E}, InitRule::Ones);
  }
}

// splitmix64: a tiny, fully specified generator, so seeded weights are the same everywhere.
struct SplitMix64 {
  std::uint64_t state;
  std::uint64_t next() {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform01() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }
};

std::uint64_t fnv1a(const std::string& text) {
  std::uint64_t hash = 0xcbf29ce484222325ull;
  for (unsigned char c : text) hash = (hash ^ c) * 0x100000001b3ull;
  return hash;
}

}  // namespace

std::vector<ParameterSpec> parameter_specs(const NetworkConfig& config) {
  validate(config);
  SpecBuilder b;
  const auto& dims = config.dims;
  b.conv("encoder/stem", config.in_channels, dims[0], 7, true);
  for (int i = 0; i < kStages; ++i) {
    const std::string stage = "encoder/stages/" + std::to_string(i);
    if (i > 0) {
      b.norm(stage + "/down/norm", dims[i - 1]);
      b.conv(stage + "/down/conv", dims[i - 1], dims[i], 2, true);
    }
    for (int j = 0; j < config.depths[i]; ++j) {
      const std::string block = stage + "/blocks/" + std::to_string(j);
      add_dlka(b, block + "/dlka", dims[i], config.deformable[i]);
      add_mamba(b, block + "/mamba", config, i);
    }
    b.norm(stage + "/out/norm", dims[i]);
    b.conv(stage + "/out/mlp/fc1", dims[i], 2 * dims[i], 1, true);
    b.conv(stage + "/out/mlp/fc2", 2 * dims[i], dims[i], 1, true);
  }
  b.res_block("decoder/enc0", config.in_channels, dims[0]);
  b.res_block("decoder/enc1", dims[0], dims[1]);
  b.res_block("decoder/enc2", dims[1], dims[2]);
  b.res_block("decoder/enc3", dims[2], dims[3]);
  b.res_block("decoder/bott", dims[3], config.hidden);
  const int up_in[4] = {config.hidden, dims[3], dims[2], dims[1]};
  for (int u = 0; u < 4; ++u) {
    const int level = 3 - u;  // dec3, dec2, dec1, dec0
    const std::string dec = "decoder/dec" + std::to_string(level);
    // ConvTranspose3d weight is [in, out, 2, 2, 2]; PyTorch's fan_in for it is out * 8.
    b.weight(dec + "/up/weight", {up_in[u], dims[level], 2, 2, 2}, static_cast<std::int64_t>(dims[level]) * 8);
    b.res_block(dec + "/res", 2 * dims[level], dims[level]);
  }
  b.res_block("decoder/head/res", dims[0], dims[0]);
  b.conv("decoder/head/out", dims[0], config.num_classes, 1, true);
  return b.specs;
}

ParameterMap initialize_parameters(const NetworkConfig& config, std::uint64_t seed) {
  ParameterMap parameters;
  for (const ParameterSpec& spec : parameter_specs(config)) {
    Tensor tensor = Tensor::empty(spec.shape);
    float* data = tensor.data<float>();
    const std::int64_t count = tensor.numel();
    SplitMix64 rng{seed ^ fnv1a(spec.name)};
    switch (spec.init) {
      case InitRule::Uniform:
        for (std::int64_t i = 0; i < count; ++i) data[i] = static_cast<float>((2 * rng.uniform01() - 1) * spec.bound);
        break;
      case InitRule::Ones:
        for (std::int64_t i = 0; i < count; ++i) data[i] = 1.0f;
        break;
      case InitRule::Zeros:
        for (std::int64_t i = 0; i < count; ++i) data[i] = 0.0f;
        break;
      case InitRule::ALog: {
        const std::int64_t states = spec.shape[1];
        for (std::int64_t i = 0; i < count; ++i) data[i] = static_cast<float>(std::log(static_cast<double>(i % states + 1)));
        break;
      }
      case InitRule::DtBias:
        for (std::int64_t i = 0; i < count; ++i) {
          const double dt = std::max(1e-4, std::exp(std::log(1e-3) + rng.uniform01() * (std::log(1e-1) - std::log(1e-3))));
          data[i] = static_cast<float>(dt + std::log(-std::expm1(-dt)));  // softplus^-1(dt)
        }
        break;
    }
    parameters.emplace(spec.name, std::move(tensor));
  }
  return parameters;
}

void randomize_offset_heads(ParameterMap& parameters, double scale, std::uint64_t seed) {
  for (auto& [name, tensor] : parameters) {
    if (name.find("/offset/pw/") == std::string::npos) continue;
    SplitMix64 rng{seed ^ fnv1a(name) ^ 0x0ff5e7ull};
    float* data = tensor.data<float>();
    for (std::int64_t i = 0; i < tensor.numel(); ++i) data[i] = static_cast<float>((2 * rng.uniform01() - 1) * scale);
  }
}

void check_parameters(const NetworkConfig& config, const ParameterMap& parameters) {
  std::set<std::string> expected;
  for (const ParameterSpec& spec : parameter_specs(config)) {
    expected.insert(spec.name);
    auto found = parameters.find(spec.name);
    if (found == parameters.end()) throw Error("tensor '" + spec.name + "' is missing");
    const Tensor& tensor = found->second;
    if (tensor.shape() != spec.shape) {
      throw Error("tensor '" + spec.name + "' has shape " + shape_string(tensor.shape()) + ", expected " +
                  shape_string(spec.shape));
    }
    if (tensor.dtype() != DType::f32) throw Error("tensor '" + spec.name + "' is not float32");
    const std::int64_t bad = count_non_finite(tensor);
    if (bad > 0) {
      throw Error("tensor '" + spec.name + "' holds " + std::to_string(bad) + " NaN or infinite values");
    }
  }
  for (const auto& entry : parameters) {
    if (!expected.count(entry.first)) {
      throw Error("unexpected tensor '" + entry.first + "' (not part of this configuration)");
    }
  }
}

std::string module_of(const std::string& name) {
  // encoder/stages/i/... keeps three components; everything else two.
  const int keep = name.rfind("encoder/stages/", 0) == 0 ? 3 : 2;
  std::size_t position = 0;
  for (int i = 0; i < keep; ++i) {
    position = name.find('/', position);
    if (position == std::string::npos) return name;
    ++position;
  }
  return name.substr(0, position - 1);
}

std::int64_t parameter_count(const NetworkConfig& config) {
  std::int64_t total = 0;
  for (const ParameterSpec& spec : parameter_specs(config)) total += shape_numel(spec.shape);
  return total;
}

}  // namespace voxmamba::models
