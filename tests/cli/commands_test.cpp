// End-to-end tests of the `voxmamba` binary: every bad input gives one line naming the file
// and the problem with a non-zero exit (design.md, "Behaviour every face shares"), and the
// success paths produce what network.md promises.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/npy.h"
#include "io/tensor_file.h"
#include "tests/cli_runner.h"
#include "tests/file_helpers.h"

#ifndef VOXMAMBA_CLI_PATH
#error "VOXMAMBA_CLI_PATH must name the voxmamba binary"
#endif

namespace voxmamba {
namespace {

namespace fs = std::filesystem;
using namespace voxmamba::testing;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

constexpr std::int64_t kSmallParameters = 14522019;  // network.md, small with 3 classes

void write_text(const fs::path& path, const std::string& text) { write_bytes(path, text); }


class CommandsTest : public ::testing::Test {
 protected:
  // One valid small model for the whole suite (~58 MB, under a second to create).
  static void SetUpTestSuite() {
    suite_folder_ = std::make_unique<TempFolder>("cli_commands_suite");
    const RunResult result =
        run_cli(suite_folder_->path(), {"init", "--config", "small", "--classes", "3", "--seed", "1", "-o", "m.h5"});
    model_ok_ = result.status == 0;
    if (!model_ok_) std::fprintf(stderr, "voxmamba init failed (%d): %s\n", result.status, result.output.c_str());
  }
  static void TearDownTestSuite() { suite_folder_.reset(); }

  void SetUp() override { ASSERT_TRUE(model_ok_) << "the suite's model could not be created"; }

  static std::string model() { return suite_folder_->file("m.h5"); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  RunResult run(const std::vector<std::string>& args) const { return run_cli(dir_, args); }

  // Writes `file` as a copy of the suite's model changed by `edit`.
  template <typename Edit> void write_edited_model(const std::string& file, Edit edit) {
    io::TensorFile contents = io::read_tensor_file(model());
    edit(contents);
    io::write_tensor_file(file, contents);
  }

  void write_input(const std::string& file, const Shape& shape, float value = 0.5f) {
    io::write_npy(file, Tensor::full(shape, value));
  }

  // `info` and `forward` both fail on the model file `file` with one line naming it and `words`.
  void expect_bad_model(const std::string& file, const std::vector<std::string>& words) {
    std::vector<std::string> expected = words;
    expected.push_back(file);
    {
      SCOPED_TRACE("info");
      EXPECT_TRUE(is_one_line_error(run({"info", file}), expected));
    }
    {
      SCOPED_TRACE("info --json");
      EXPECT_TRUE(is_one_line_error(run({"info", file, "--json"}), expected));
    }
    {
      SCOPED_TRACE("forward");
      write_input(path("in.npy"), {1, 16, 16, 16, 1});
      EXPECT_TRUE(is_one_line_error(
          run({"forward", "--weights", file, "--input", path("in.npy"), "--output", path("out.npy")}), expected));
      EXPECT_FALSE(fs::exists(path("out.npy")));
    }
  }

  // `forward` with the suite's model fails on the input `input` naming it and `words`.
  void expect_bad_input(const std::string& input, const std::vector<std::string>& words) {
    std::vector<std::string> expected = words;
    expected.push_back(input);
    EXPECT_TRUE(is_one_line_error(
        run({"forward", "--weights", model(), "--input", input, "--output", path("out.npy")}), expected));
    EXPECT_FALSE(fs::exists(path("out.npy")));
  }

  static inline std::unique_ptr<TempFolder> suite_folder_;
  static inline bool model_ok_ = false;
  TempFolder folder_{"cli_commands_test"};
  const fs::path& dir_ = folder_.path();
};

// ---- bad model files -------------------------------------------------------------------

TEST_F(CommandsTest, ModelThatIsATextFile) {
  write_text(path("model.h5"), "this is not a model\n");
  expect_bad_model(path("model.h5"), {"not an HDF5 file"});
}

TEST_F(CommandsTest, TruncatedModel) {
  const std::string bytes = read_bytes(model());
  ASSERT_GT(bytes.size(), 1000000u);
  {
    std::ofstream out(path("model.h5"), std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
  }
  expect_bad_model(path("model.h5"), {"truncated"});
}

TEST_F(CommandsTest, ModelMissingATensor) {
  write_edited_model(path("model.h5"), [](io::TensorFile& f) { ASSERT_EQ(f.tensors.erase("decoder/head/out/bias"), 1u); });
  expect_bad_model(path("model.h5"), {"decoder/head/out/bias", "missing"});
}

TEST_F(CommandsTest, ModelWithAnExtraTensor) {
  write_edited_model(path("model.h5"),
                     [](io::TensorFile& f) { f.tensors.emplace("decoder/extra/weight", Tensor::zeros({4})); });
  expect_bad_model(path("model.h5"), {"decoder/extra/weight", "unexpected"});
}

TEST_F(CommandsTest, ModelWithAMisshapedTensor) {
  write_edited_model(path("model.h5"), [](io::TensorFile& f) {
    ASSERT_EQ(f.tensors.count("encoder/stem/bias"), 1u);
    f.tensors["encoder/stem/bias"] = Tensor::zeros({f.tensors["encoder/stem/bias"].numel() + 1});
  });
  expect_bad_model(path("model.h5"), {"encoder/stem/bias", "shape"});
}

TEST_F(CommandsTest, ModelWithAnInfiniteWeight) {  // a diverged training run saves these
  write_edited_model(path("model.h5"), [](io::TensorFile& f) {
    ASSERT_EQ(f.tensors.count("encoder/stem/weight"), 1u);
    f.tensors["encoder/stem/weight"].data<float>()[0] = INFINITY;
  });
  expect_bad_model(path("model.h5"), {"encoder/stem/weight", "NaN or infinite"});
}

TEST_F(CommandsTest, ModelWithWrongLengthDimsInConfig) {
  write_edited_model(path("model.h5"), [](io::TensorFile& f) {
    nlohmann::json config = nlohmann::json::parse(f.config_json);
    config["dims"] = {24, 48, 96};
    f.config_json = config.dump(2);
  });
  expect_bad_model(path("model.h5"), {"invalid config", "dims"});
}

TEST_F(CommandsTest, ModelWithConfigThatIsNotJson) {
  write_edited_model(path("model.h5"), [](io::TensorFile& f) { f.config_json = "dims = [24, 48]\nnot json {"; });
  expect_bad_model(path("model.h5"), {"invalid config"});
}

TEST_F(CommandsTest, ModelWithOutOfRangeConfigValue) {
  write_edited_model(path("model.h5"), [](io::TensorFile& f) {
    nlohmann::json config = nlohmann::json::parse(f.config_json);
    config["d_state"] = 0;
    f.config_json = config.dump();
  });
  expect_bad_model(path("model.h5"), {"invalid config", "d_state"});
}

TEST_F(CommandsTest, MissingModelFile) { expect_bad_model(path("nowhere.h5"), {"no such file"}); }

// ---- bad forward inputs ----------------------------------------------------------------

TEST_F(CommandsTest, ForwardInputNotAMultipleOf16) {
  write_input(path("in.npy"), {1, 24, 32, 32, 1});
  expect_bad_input(path("in.npy"), {"multiple of 16"});
}

TEST_F(CommandsTest, ForwardInputWithWrongChannels) {
  write_input(path("in.npy"), {1, 16, 16, 16, 2});
  expect_bad_input(path("in.npy"), {"channels"});
}

TEST_F(CommandsTest, ForwardInputInt32) {
  io::write_npy(path("in.npy"), Tensor::zeros({1, 16, 16, 16, 1}, DType::i32));
  expect_bad_input(path("in.npy"), {"float32"});
}

TEST_F(CommandsTest, ForwardInputRank4) {
  write_input(path("in.npy"), {16, 16, 16, 1});
  expect_bad_input(path("in.npy"), {"rank"});
}

TEST_F(CommandsTest, ForwardInputWithANaN) {
  Tensor input = Tensor::full({1, 16, 16, 16, 1}, 0.5f);
  input.data<float>()[100] = std::nanf("");
  io::write_npy(path("in.npy"), input);
  expect_bad_input(path("in.npy"), {"NaN or infinite"});
  EXPECT_FALSE(fs::exists(path("out.npy")));
}

TEST_F(CommandsTest, ForwardInputMissing) { expect_bad_input(path("nowhere.npy"), {"no such file"}); }

TEST_F(CommandsTest, ForwardInputNotAnNpy) {
  write_text(path("in.npy"), "1 2 3\n");
  expect_bad_input(path("in.npy"), {"not an NPY"});
}

TEST_F(CommandsTest, ForwardRefusesOutputEqualToInput) {
  write_input(path("in.npy"), {1, 16, 16, 16, 1});
  const std::string before = read_bytes(path("in.npy"));
  EXPECT_TRUE(is_one_line_error(
      run({"forward", "--weights", model(), "--input", path("in.npy"), "--output", path("in.npy")}),
      {path("in.npy")}));
  EXPECT_TRUE(read_bytes(path("in.npy")) == before) << "the input file was modified";
}

// The same file spelt another way ("./in.npy" against "in.npy") is still the input.
TEST_F(CommandsTest, ForwardRefusesOutputThatIsTheInputSpeltDifferently) {
  write_input(path("in.npy"), {1, 16, 16, 16, 1});
  const std::string before = read_bytes(path("in.npy"));
  const RunResult result = run({"forward", "--weights", model(), "--input", "in.npy", "--output", "./in.npy"});
  EXPECT_TRUE(is_one_line_error(result, {"in.npy"}));
  EXPECT_TRUE(read_bytes(path("in.npy")) == before) << "the input file was modified";
}

TEST_F(CommandsTest, ForwardRefusesOutputEqualToWeights) {
  fs::copy_file(model(), path("m.h5"));
  write_input(path("in.npy"), {1, 16, 16, 16, 1});
  const std::string before = read_bytes(path("m.h5"));
  EXPECT_TRUE(is_one_line_error(run({"forward", "--weights", "m.h5", "--input", "in.npy", "--output", "m.h5"}),
                                {"m.h5"}));
  EXPECT_TRUE(read_bytes(path("m.h5")) == before) << "the model file was modified";
}

TEST_F(CommandsTest, ForwardIntoMissingFolder) {
  write_input(path("in.npy"), {1, 16, 16, 16, 1});
  const std::string output = path("no-such-folder/out.npy");
  EXPECT_TRUE(is_one_line_error(run({"forward", "--weights", model(), "--input", path("in.npy"), "--output", output}),
                                {output}));
  EXPECT_FALSE(fs::exists(path("no-such-folder")));
}

// ---- init ------------------------------------------------------------------------------

TEST_F(CommandsTest, InitRefusesToOverwriteWithoutForce) {
  write_text(path("m.h5"), "precious\n");
  EXPECT_TRUE(is_one_line_error(run({"init", "--config", "small", "--classes", "3", "-o", path("m.h5")}),
                                {path("m.h5"), "exists", "--force"}));
  EXPECT_EQ(read_bytes(path("m.h5")), "precious\n");
}

TEST_F(CommandsTest, InitWithForceReplacesTheFile) {
  write_text(path("m.h5"), "old\n");
  const RunResult result = run({"init", "--config", "small", "--classes", "3", "--seed", "1", "-o", "m.h5", "--force"});
  ASSERT_EQ(result.status, 0) << result.output;
  // Same seed, same weights: byte for byte the suite's model, tensor for tensor.
  const io::TensorFile mine = io::read_tensor_file(path("m.h5"));
  const io::TensorFile suite = io::read_tensor_file(model());
  EXPECT_EQ(mine.config_json, suite.config_json);
  ASSERT_EQ(mine.tensors.size(), suite.tensors.size());
  for (const auto& [name, tensor] : suite.tensors) {
    ASSERT_EQ(mine.tensors.count(name), 1u) << name;
    const Tensor& other = mine.tensors.at(name);
    ASSERT_EQ(other.shape(), tensor.shape()) << name;
    EXPECT_EQ(std::memcmp(other.raw_data(), tensor.raw_data(), tensor.bytes()), 0) << name;
  }
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir_)) names.push_back(entry.path().filename().string());
  EXPECT_EQ(names, std::vector<std::string>{"m.h5"});  // no .partial-* left behind
}

TEST_F(CommandsTest, InitUnknownPreset) {
  EXPECT_TRUE(is_one_line_error(run({"init", "--config", "tiny", "--classes", "3", "-o", "m.h5"}),
                                {"tiny", "small, base"}));
  EXPECT_FALSE(fs::exists(path("m.h5")));
}

TEST_F(CommandsTest, InitConfigFileWithInvalidValue) {
  write_text(path("cfg.json"), R"({"in_channels": 1, "num_classes": 3, "dims": [24, 48, 96, 192],
  "depths": [1, 1, 1, 1], "hidden": 384, "d_state": 0, "d_conv": 4, "expand": 2,
  "deformable": [false, false, true, true]})");
  EXPECT_TRUE(is_one_line_error(run({"init", "--config", path("cfg.json"), "-o", "m.h5"}),
                                {path("cfg.json"), "invalid config", "d_state"}));
  EXPECT_FALSE(fs::exists(path("m.h5")));
}

TEST_F(CommandsTest, InitConfigFileThatIsNotJson) {
  write_text(path("cfg.json"), "in_channels: 1\n");
  EXPECT_TRUE(is_one_line_error(run({"init", "--config", path("cfg.json"), "--classes", "3", "-o", "m.h5"}),
                                {path("cfg.json"), "invalid config"}));
  EXPECT_FALSE(fs::exists(path("m.h5")));
}

TEST_F(CommandsTest, InitConfigFileWorks) {
  write_text(path("cfg.json"), R"({"in_channels": 1, "num_classes": 2, "dims": [24, 48, 96, 192],
  "depths": [1, 1, 1, 1], "hidden": 384, "d_state": 16, "d_conv": 4, "expand": 2,
  "deformable": [false, false, true, true]})");
  const RunResult result = run({"init", "--config", "cfg.json", "--classes", "3", "-o", "m.h5"});
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr(std::to_string(kSmallParameters)));  // --classes overrides the file
}

TEST_F(CommandsTest, InitPresetWithoutClasses) {
  EXPECT_TRUE(is_one_line_error(run({"init", "--config", "small", "-o", "m.h5"}), {"--classes", "small"}));
  EXPECT_FALSE(fs::exists(path("m.h5")));
}

TEST_F(CommandsTest, InitIntoMissingFolderNamesTheFile) {
  const std::string output = path("no-such-folder/m.h5");
  const RunResult result = run({"init", "--config", "small", "--classes", "3", "-o", output});
  EXPECT_TRUE(is_one_line_error(result, {output + ": "}));
  EXPECT_THAT(result.output, Not(HasSubstr(".partial")));
}

// ---- success paths ---------------------------------------------------------------------

TEST_F(CommandsTest, InfoJsonAndText) {
  const RunResult json_run = run({"info", model(), "--json"});
  ASSERT_EQ(json_run.status, 0) << json_run.output;
  nlohmann::json info;
  ASSERT_NO_THROW(info = nlohmann::json::parse(json_run.output)) << json_run.output;
  EXPECT_EQ(info.at("parameters").get<std::int64_t>(), kSmallParameters);
  EXPECT_EQ(info.at("path").get<std::string>(), model());
  EXPECT_EQ(info.at("config").at("num_classes").get<int>(), 3);
  EXPECT_EQ(info.at("config").at("dims"), nlohmann::json({24, 48, 96, 192}));
  std::int64_t module_total = 0;
  for (const auto& [name, count] : info.at("modules").items()) module_total += count.get<std::int64_t>();
  EXPECT_EQ(module_total, kSmallParameters);

  const RunResult text_run = run({"info", model()});
  ASSERT_EQ(text_run.status, 0) << text_run.output;
  EXPECT_THAT(text_run.output, HasSubstr(std::to_string(kSmallParameters)));
  EXPECT_THAT(text_run.output, HasSubstr(model()));
}

TEST_F(CommandsTest, InitPrintsTheParameterCount) {
  const RunResult result = run({"init", "--config", "small", "--classes", "3", "--seed", "7", "-o", "m.h5"});
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr(std::to_string(kSmallParameters)));
  EXPECT_TRUE(fs::exists(path("m.h5")));
}

TEST_F(CommandsTest, ForwardWritesFiniteLogits) {
  write_input(path("in.npy"), {1, 16, 16, 16, 1}, 0.25f);
  const RunResult result =
      run({"forward", "--weights", model(), "--input", "in.npy", "--output", "out.npy"});
  ASSERT_EQ(result.status, 0) << result.output;
  const Tensor logits = io::read_npy(path("out.npy"));
  ASSERT_EQ(logits.dtype(), DType::f32);
  ASSERT_EQ(logits.shape(), (Shape{1, 16, 16, 16, 3}));
  const float* data = logits.data<float>();
  for (std::int64_t i = 0; i < logits.numel(); ++i) ASSERT_TRUE(std::isfinite(data[i])) << "at " << i;
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir_)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"in.npy", "out.npy"}));  // no .partial-* left behind
}

TEST_F(CommandsTest, ForwardRefusesSixteenBitTypesOnTheCpuAndUnknownPrecisions) {
  write_input(path("in.npy"), {1, 16, 16, 16, 1});
  const std::vector<std::string> base = {"forward", "--weights", model(), "--input", "in.npy", "--output", "out.npy",
                                         "--device", "cpu", "--precision"};
  std::vector<std::string> bf16 = base, fp16 = base, fp64 = base, fp32 = base;
  bf16.push_back("bf16");
  fp16.push_back("fp16");
  fp64.push_back("fp64");
  fp32.push_back("fp32");
  EXPECT_TRUE(is_one_line_error(run(bf16), {"bf16", "GPU"}));
  EXPECT_TRUE(is_one_line_error(run(fp16), {"fp16", "GPU"}));
  EXPECT_TRUE(is_one_line_error(run(fp64), {"fp64", "auto, fp32, bf16 or fp16"}));
  EXPECT_FALSE(fs::exists(path("out.npy")));
  const RunResult exact = run(fp32);
  EXPECT_EQ(exact.status, 0) << exact.output;
}

TEST_F(CommandsTest, ForwardIsBitIdenticalAcrossRuns) {
  // A non-constant input so that the whole network is exercised.
  Tensor input = Tensor::empty({1, 16, 16, 16, 1});
  for (std::int64_t i = 0; i < input.numel(); ++i) input.data<float>()[i] = std::sin(0.37f * static_cast<float>(i));
  io::write_npy(path("in.npy"), input);
  const RunResult first = run({"forward", "--weights", model(), "--input", "in.npy", "--output", "a.npy", "--quiet"});
  ASSERT_EQ(first.status, 0) << first.output;
  EXPECT_EQ(first.output, "");  // --quiet
  const RunResult second = run({"forward", "--weights", model(), "--input", "in.npy", "--output", "b.npy", "--quiet"});
  ASSERT_EQ(second.status, 0) << second.output;
  const std::string a = read_bytes(path("a.npy"));
  ASSERT_FALSE(a.empty());
  EXPECT_TRUE(a == read_bytes(path("b.npy"))) << "two runs gave different bytes";
}

TEST_F(CommandsTest, HelpMentionsExamples) {
  const RunResult top = run({"--help"});
  EXPECT_EQ(top.status, 0) << top.output;
  EXPECT_THAT(top.output, HasSubstr("Example"));
  EXPECT_THAT(top.output, HasSubstr("voxmamba forward"));
  const RunResult forward = run({"forward", "--help"});
  EXPECT_EQ(forward.status, 0) << forward.output;
  EXPECT_THAT(forward.output, HasSubstr("Example"));
  EXPECT_THAT(forward.output, HasSubstr("--weights"));
}

}  // namespace
}  // namespace voxmamba
