#include "models/parameters.h"

#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "models/network_config_json.h"

namespace voxmamba::models {
namespace {

TEST(Parameters, CountsMatchNetworkMdForThreeClasses) {
  EXPECT_EQ(parameter_count(preset_config("small", 3)), 14522019);
  EXPECT_EQ(parameter_count(preset_config("base", 3)), 60381027);
}

TEST(Parameters, NamesAreUniqueAndFollowNetworkMd) {
  const auto specs = parameter_specs(preset_config("base", 3));
  std::set<std::string> names;
  for (const auto& spec : specs) EXPECT_TRUE(names.insert(spec.name).second) << spec.name;
  for (const char* expected :
       {"encoder/stem/weight", "encoder/stages/1/down/conv/weight", "encoder/stages/3/blocks/1/dlka/lka/dw7/weight",
        "encoder/stages/0/blocks/0/dlka/lka/dw5/offset/pw/bias", "encoder/stages/2/blocks/0/mamba/slice/A_log",
        "encoder/stages/2/blocks/0/mamba/bwd/x_proj/weight", "encoder/stages/0/out/mlp/fc2/bias",
        "decoder/bott/skip/norm/weight", "decoder/dec0/up/weight", "decoder/head/res/conv2/weight",
        "decoder/head/out/bias"}) {
    EXPECT_TRUE(names.count(expected)) << expected;
  }
  // The small config has no offset heads at stages 0 and 1, and no skip in the head block.
  std::set<std::string> small;
  for (const auto& spec : parameter_specs(preset_config("small", 3))) small.insert(spec.name);
  EXPECT_FALSE(small.count("encoder/stages/0/blocks/0/dlka/lka/dw5/offset/pw/weight"));
  EXPECT_TRUE(small.count("encoder/stages/2/blocks/0/dlka/lka/dw5/offset/pw/weight"));
  EXPECT_FALSE(small.count("decoder/head/res/skip/conv/weight"));
}

TEST(Parameters, ShapesAreThePyTorchShapes) {
  std::map<std::string, Shape> shapes;
  for (const auto& spec : parameter_specs(preset_config("small", 3))) shapes[spec.name] = spec.shape;
  EXPECT_EQ(shapes["encoder/stem/weight"], (Shape{24, 1, 7, 7, 7}));
  EXPECT_EQ(shapes["decoder/dec3/up/weight"], (Shape{384, 192, 2, 2, 2}));
  EXPECT_EQ(shapes["encoder/stages/1/blocks/0/mamba/fwd/conv1d/weight"], (Shape{96, 1, 4}));
  EXPECT_EQ(shapes["encoder/stages/1/blocks/0/mamba/fwd/x_proj/weight"], (Shape{3 + 32, 96}));
  EXPECT_EQ(shapes["encoder/stages/3/blocks/0/dlka/lka/dw7/offset/pw/weight"], (Shape{3 * 343, 192, 1, 1, 1}));
  EXPECT_EQ(shapes["encoder/stages/0/blocks/0/dlka/lka/dw5/weight"], (Shape{24, 1, 5, 5, 5}));
}

TEST(Parameters, InitialisationIsSeededAndFollowsTheRules) {
  const NetworkConfig config = preset_config("small", 2);
  const ParameterMap a = initialize_parameters(config, 7), b = initialize_parameters(config, 7),
                     c = initialize_parameters(config, 8);
  const std::string stem = "encoder/stem/weight";
  const float* pa = a.at(stem).data<float>();
  const float* pb = b.at(stem).data<float>();
  const float* pc = c.at(stem).data<float>();
  int differing = 0;
  for (std::int64_t i = 0; i < a.at(stem).numel(); ++i) {
    ASSERT_EQ(pa[i], pb[i]);
    differing += pa[i] != pc[i];
    ASSERT_LE(std::abs(pa[i]), 1.0 / std::sqrt(343.0) + 1e-7);
  }
  EXPECT_GT(differing, 8000);
  const Tensor& a_log = a.at("encoder/stages/0/blocks/0/mamba/fwd/A_log");
  EXPECT_FLOAT_EQ(a_log.data<float>()[16 + 3], std::log(4.0f));
  EXPECT_EQ(a.at("encoder/stages/0/blocks/0/mamba/slice/D").data<float>()[5], 1.0f);
  const Tensor& dt_bias = a.at("encoder/stages/1/blocks/0/mamba/bwd/dt_proj/bias");
  for (std::int64_t i = 0; i < dt_bias.numel(); ++i) {
    const double dt = std::log1p(std::exp(static_cast<double>(dt_bias.data<float>()[i])));
    ASSERT_GE(dt, 1e-3 * 0.999);
    ASSERT_LE(dt, 1e-1 * 1.001);
  }
  const Tensor& offsets = a.at("encoder/stages/2/blocks/0/dlka/lka/dw7/offset/pw/weight");
  for (std::int64_t i = 0; i < offsets.numel(); ++i) ASSERT_EQ(offsets.data<float>()[i], 0.0f);
}

TEST(Parameters, CheckNamesTheMissingExtraMisshapedOrNonFiniteTensor) {
  const NetworkConfig config = preset_config("small", 2);
  auto expect_error = [&](const ParameterMap& parameters, const std::string& fragment) {
    try {
      check_parameters(config, parameters);
      FAIL() << "expected an error mentioning " << fragment;
    } catch (const Error& error) {
      EXPECT_NE(std::string(error.what()).find(fragment), std::string::npos) << error.what();
    }
  };
  ParameterMap missing = initialize_parameters(config, 1);
  missing.erase("decoder/head/out/bias");
  expect_error(missing, "'decoder/head/out/bias' is missing");
  ParameterMap extra = initialize_parameters(config, 1);
  extra.emplace("decoder/head/extra", Tensor::zeros({3}));
  expect_error(extra, "unexpected tensor 'decoder/head/extra'");
  ParameterMap misshaped = initialize_parameters(config, 1);
  misshaped["encoder/stem/bias"] = Tensor::zeros({25});
  expect_error(misshaped, "'encoder/stem/bias' has shape [25]");
  ParameterMap diverged = initialize_parameters(config, 1);
  diverged["encoder/stem/weight"].data<float>()[3] = std::nanf("");
  diverged["encoder/stem/weight"].data<float>()[9] = -INFINITY;
  expect_error(diverged, "'encoder/stem/weight' holds 2 NaN or infinite values");
  EXPECT_NO_THROW(check_parameters(config, initialize_parameters(config, 1)));
}

TEST(Parameters, ModuleNames) {
  EXPECT_EQ(module_of("encoder/stages/2/blocks/0/mamba/fwd/D"), "encoder/stages/2");
  EXPECT_EQ(module_of("encoder/stem/weight"), "encoder/stem");
  EXPECT_EQ(module_of("decoder/dec1/res/conv1/weight"), "decoder/dec1");
}

TEST(NetworkConfigJson, RoundTripsAndRejectsInvalidConfigs) {
  const NetworkConfig base = preset_config("base", 5);
  const NetworkConfig back = network_config_from_json(network_config_to_json(base));
  EXPECT_EQ(back.dims, base.dims);
  EXPECT_EQ(back.deformable, base.deformable);
  EXPECT_EQ(back.num_classes, 5);
  for (const char* bad : {"not json", "[1, 2]", R"({"in_channels": 1})",
                          R"({"in_channels":1,"num_classes":3,"dims":[24,48,96],"depths":[1,1,1,1],"hidden":384,"d_state":16,"d_conv":4,"expand":2,"deformable":[false,false,true,true]})",
                          R"({"in_channels":1,"num_classes":0,"dims":[24,48,96,192],"depths":[1,1,1,1],"hidden":384,"d_state":16,"d_conv":4,"expand":2,"deformable":[false,false,true,true]})",
                          R"({"in_channels":1,"num_classes":3,"dims":[24,48,96,192],"depths":[1,1,1,1],"hidden":384,"d_state":16,"d_conv":4,"expand":2,"deformable":[0,0,1,1]})"}) {
    try {
      network_config_from_json(bad);
      FAIL() << "accepted " << bad;
    } catch (const Error& error) {
      EXPECT_NE(std::string(error.what()).find("invalid config"), std::string::npos) << error.what();
    }
  }
}

}  // namespace
}  // namespace voxmamba::models
