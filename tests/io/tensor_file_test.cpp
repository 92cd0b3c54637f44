// io::read_tensor_file / io::write_tensor_file: the HDF5 model file format (network.md,
// "Weights file"), files written by h5py, errors that name the file, and atomic writes.
#include "io/tensor_file.h"

#include "tests/file_helpers.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace voxmamba::io {
namespace {

namespace fs = std::filesystem;
using namespace voxmamba::testing;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// A tensor of `shape` whose values are start, start + 0.5, ...
Tensor ramp(const Shape& shape, float start) {
  Tensor tensor = Tensor::empty(shape);
  float* data = tensor.data<float>();
  for (std::int64_t i = 0; i < tensor.numel(); ++i) data[i] = start + 0.5f * static_cast<float>(i);
  return tensor;
}

void expect_same_tensor(const Tensor& actual, const Tensor& expected) {
  EXPECT_EQ(actual.dtype(), DType::f32);
  ASSERT_EQ(actual.shape(), expected.shape());
  if (expected.bytes() > 0) {
    EXPECT_EQ(std::memcmp(actual.raw_data(), expected.raw_data(), expected.bytes()), 0);
  }
}

class TensorFileTest : public ::testing::Test {
 protected:
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  std::vector<std::string> folder_listing() const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir_)) names.push_back(entry.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

  // Writes a Python script into the test folder and runs it there; returns its exit status.
  int run_python(const std::string& script) const { return voxmamba::testing::run_python(dir_, script); }
  std::string python_log() const { return read_bytes(dir_ / "python.log"); }

  // Expects read_tensor_file(file) to throw one line that names the file and contains `word`.
  void expect_read_error(const std::string& file, const std::string& word) {
    try {
      read_tensor_file(file);
      FAIL() << "read_tensor_file(" << file << ") did not throw";
    } catch (const Error& error) {
      const std::string message = error.what();
      EXPECT_THAT(message, StartsWith(file + ": "));
      EXPECT_THAT(message, HasSubstr(word));
      EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    }
  }

  TempFolder folder_{"tensor_file_test"};
  const fs::path& dir_ = folder_.path();
};

TensorFile sample_file() {
  TensorFile file;
  file.config_json = R"({"in_channels": 1, "dims": [24, 48, 96, 192], "note": "caf\u00e9"})";
  file.tensors.emplace("a/b/weight", ramp({4, 3, 3, 3, 2}, -10.0f));
  file.tensors.emplace("a/b/bias", ramp({4}, 1.0f));
  file.tensors.emplace("a/c/weight", ramp({2, 5}, 0.25f));
  file.tensors.emplace("encoder/stages/0/blocks/0/mamba/A_log", ramp({6, 16}, -3.0f));
  file.tensors.emplace("top", ramp({3}, 7.0f));
  return file;
}

TEST_F(TensorFileTest, RoundTripConfigAndNestedTensors) {
  const TensorFile original = sample_file();
  write_tensor_file(path("m.h5"), original);
  const TensorFile loaded = read_tensor_file(path("m.h5"));
  EXPECT_EQ(loaded.config_json, original.config_json);
  ASSERT_EQ(loaded.tensors.size(), original.tensors.size());
  for (const auto& [name, tensor] : original.tensors) {
    SCOPED_TRACE(name);
    auto found = loaded.tensors.find(name);
    ASSERT_NE(found, loaded.tensors.end());
    expect_same_tensor(found->second, tensor);
  }
}

TEST_F(TensorFileTest, RoundTripEmptyConfigAndNoTensors) {
  TensorFile original;
  original.config_json = "{}";
  write_tensor_file(path("m.h5"), original);
  const TensorFile loaded = read_tensor_file(path("m.h5"));
  EXPECT_EQ(loaded.config_json, "{}");
  EXPECT_TRUE(loaded.tensors.empty());
}

TEST_F(TensorFileTest, RoundTripSizeZeroTensor) {
  TensorFile original;
  original.config_json = "{}";
  original.tensors.emplace("x/empty", Tensor::zeros({3, 0}));
  original.tensors.emplace("x/full", ramp({2}, 1.0f));
  write_tensor_file(path("m.h5"), original);
  const TensorFile loaded = read_tensor_file(path("m.h5"));
  ASSERT_EQ(loaded.tensors.count("x/empty"), 1u);
  EXPECT_EQ(loaded.tensors.at("x/empty").shape(), (Shape{3, 0}));
  expect_same_tensor(loaded.tensors.at("x/full"), original.tensors.at("x/full"));
}

TEST_F(TensorFileTest, OverwriteReplacesTheWholeFile) {
  write_tensor_file(path("m.h5"), sample_file());
  TensorFile second;
  second.config_json = R"({"second": true})";
  second.tensors.emplace("only/one", ramp({2, 2}, 0.0f));
  write_tensor_file(path("m.h5"), second);
  const TensorFile loaded = read_tensor_file(path("m.h5"));
  EXPECT_EQ(loaded.config_json, second.config_json);
  ASSERT_EQ(loaded.tensors.size(), 1u);
  expect_same_tensor(loaded.tensors.at("only/one"), second.tensors.at("only/one"));
}

TEST_F(TensorFileTest, ReadsFileWrittenByH5py) {
  if (!python_has("h5py")) GTEST_SKIP() << kPython << " has no h5py";
  const std::string script = R"(
import h5py, numpy as np
with h5py.File('py.h5', 'w') as f:
    f.attrs['config'] = '{"in_channels": 1, "note": "caf\u00e9", "dims": [24, 48, 96, 192]}'
    f.create_dataset('encoder/stem/weight', data=(np.arange(24, dtype='<f4') * 0.5 - 2).reshape(2, 1, 3, 4))
    f.create_dataset('encoder/stem/bias', data=np.array([1.5, -1.5], dtype='<f4'))
    f.create_dataset('decoder/head/out/weight', data=np.arange(6, dtype='>f4').reshape(3, 2))
    f.create_dataset('chunked/weight', data=np.arange(100, dtype='<f4'), chunks=(10,), compression='gzip')
    g = f.create_group('empty/group')
    assert h5py.check_string_dtype(f.attrs.get_id('config').dtype).length is None  # variable length
)";
  ASSERT_EQ(run_python(script), 0) << python_log();
  const TensorFile loaded = read_tensor_file(path("py.h5"));
  EXPECT_EQ(loaded.config_json, "{\"in_channels\": 1, \"note\": \"caf\xc3\xa9\", \"dims\": [24, 48, 96, 192]}");
  ASSERT_EQ(loaded.tensors.size(), 4u);

  const Tensor& stem = loaded.tensors.at("encoder/stem/weight");
  ASSERT_EQ(stem.shape(), (Shape{2, 1, 3, 4}));
  for (int i = 0; i < 24; ++i) EXPECT_EQ(stem.data<float>()[i], 0.5f * static_cast<float>(i) - 2.0f) << i;
  const Tensor& bias = loaded.tensors.at("encoder/stem/bias");
  ASSERT_EQ(bias.shape(), Shape{2});
  EXPECT_EQ(bias.data<float>()[0], 1.5f);
  EXPECT_EQ(bias.data<float>()[1], -1.5f);
  // Big-endian float32 is still float32: HDF5 converts it.
  const Tensor& head = loaded.tensors.at("decoder/head/out/weight");
  ASSERT_EQ(head.shape(), (Shape{3, 2}));
  for (int i = 0; i < 6; ++i) EXPECT_EQ(head.data<float>()[i], static_cast<float>(i));
  const Tensor& chunked = loaded.tensors.at("chunked/weight");
  ASSERT_EQ(chunked.shape(), Shape{100});
  for (int i = 0; i < 100; ++i) EXPECT_EQ(chunked.data<float>()[i], static_cast<float>(i));
}

TEST_F(TensorFileTest, ReadsFixedLengthConfigWrittenByH5py) {
  if (!python_has("h5py")) GTEST_SKIP() << kPython << " has no h5py";
  ASSERT_EQ(run_python("import h5py, numpy as np\n"
                       "with h5py.File('py.h5', 'w') as f:\n"
                       "    f.attrs['config'] = np.bytes_(b'{\"a\": 1}')\n"
                       "    f['w'] = np.ones(3, dtype='f4')\n"),
            0)
      << python_log();
  const TensorFile loaded = read_tensor_file(path("py.h5"));
  EXPECT_EQ(loaded.config_json, "{\"a\": 1}");
  ASSERT_EQ(loaded.tensors.size(), 1u);
  EXPECT_EQ(loaded.tensors.at("w").shape(), Shape{3});
}

TEST_F(TensorFileTest, H5pyReadsFileWeWrite) {
  if (!python_has("h5py")) GTEST_SKIP() << kPython << " has no h5py";
  write_tensor_file(path("m.h5"), sample_file());
  const std::string script = R"(
import h5py, json, numpy as np
with h5py.File('m.h5', 'r') as f:
    config = f.attrs['config']
    if isinstance(config, bytes):
        config = config.decode('utf-8')
    assert json.loads(config)['dims'] == [24, 48, 96, 192], config
    w = f['a/b/weight']
    assert w.dtype == np.dtype('<f4'), w.dtype
    assert w.shape == (4, 3, 3, 3, 2), w.shape
    assert np.array_equal(w[()].ravel(), -10 + 0.5 * np.arange(216, dtype='f4'))
    names = []
    f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    assert sorted(names) == ['a/b/bias', 'a/b/weight', 'a/c/weight',
                             'encoder/stages/0/blocks/0/mamba/A_log', 'top'], names
)";
  EXPECT_EQ(run_python(script), 0) << python_log();
}

TEST_F(TensorFileTest, MissingFile) { expect_read_error(path("missing.h5"), "no such file"); }

TEST_F(TensorFileTest, FolderInsteadOfFile) {
  fs::create_directory(path("folder.h5"));
  expect_read_error(path("folder.h5"), "folder");
}

TEST_F(TensorFileTest, TextFileIsNotHdf5) {
  std::ofstream(path("model.h5")) << "this is a text file, not a model\n";
  expect_read_error(path("model.h5"), "not an HDF5 file");
}

TEST_F(TensorFileTest, EmptyFileIsNotHdf5) {
  std::ofstream{path("model.h5")};
  expect_read_error(path("model.h5"), "not an HDF5 file");
}

TEST_F(TensorFileTest, TruncatedFile) {
  TensorFile file = sample_file();
  file.tensors.emplace("big/weight", ramp({64, 64, 16}, 0.0f));  // 256 KiB of data
  write_tensor_file(path("full.h5"), file);
  const std::string bytes = read_bytes(path("full.h5"));
  ASSERT_GT(bytes.size(), 200000u);
  {
    std::ofstream out(path("half.h5"), std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
  }
  expect_read_error(path("half.h5"), "truncated");
}

TEST_F(TensorFileTest, MissingConfigAttribute) {
  if (!python_has("h5py")) GTEST_SKIP() << kPython << " has no h5py";
  ASSERT_EQ(run_python("import h5py, numpy as np\n"
                       "with h5py.File('noconfig.h5', 'w') as f:\n"
                       "    f['a/weight'] = np.ones(3, dtype='f4')\n"),
            0)
      << python_log();
  expect_read_error(path("noconfig.h5"), "config");
}

TEST_F(TensorFileTest, Float64Dataset) {
  if (!python_has("h5py")) GTEST_SKIP() << kPython << " has no h5py";
  ASSERT_EQ(run_python("import h5py, numpy as np\n"
                       "with h5py.File('f64.h5', 'w') as f:\n"
                       "    f.attrs['config'] = np.bytes_(b'{}')\n"  // fixed-length, as we write it
                       "    f['a/ok'] = np.ones(3, dtype='f4')\n"
                       "    f['a/b/weight'] = np.ones((2, 2), dtype='f8')\n"),
            0)
      << python_log();
  expect_read_error(path("f64.h5"), "float32");
  expect_read_error(path("f64.h5"), "a/b/weight");
}

TEST_F(TensorFileTest, IntegerDataset) {
  if (!python_has("h5py")) GTEST_SKIP() << kPython << " has no h5py";
  ASSERT_EQ(run_python("import h5py, numpy as np\n"
                       "with h5py.File('i32.h5', 'w') as f:\n"
                       "    f.attrs['config'] = np.bytes_(b'{}')\n"  // fixed-length, as we write it
                       "    f['count'] = np.ones(3, dtype='i4')\n"),
            0)
      << python_log();
  expect_read_error(path("i32.h5"), "float32");
  expect_read_error(path("i32.h5"), "count");
}

TEST_F(TensorFileTest, SuccessfulWriteLeavesNoPartialFile) {
  write_tensor_file(path("m.h5"), sample_file());
  EXPECT_EQ(folder_listing(), std::vector<std::string>{"m.h5"});
  write_tensor_file(path("m.h5"), sample_file());  // replacing an existing file, too
  EXPECT_EQ(folder_listing(), std::vector<std::string>{"m.h5"});
}

TEST_F(TensorFileTest, FailedWriteIntoMissingFolderNamesThePath) {
  const std::string file = path("missing-folder/m.h5");
  try {
    write_tensor_file(file, sample_file());
    FAIL() << "write_tensor_file did not throw";
  } catch (const Error& error) {
    const std::string message = error.what();
    // The message names the file the caller asked for, not the temporary name.
    EXPECT_THAT(message, StartsWith(file + ": ")) << message;
    EXPECT_THAT(message, ::testing::Not(HasSubstr(".partial"))) << message;
  }
  EXPECT_EQ(folder_listing(), std::vector<std::string>{});
}

TEST_F(TensorFileTest, FailedWriteOfNonFloatTensorLeavesNothingBehind) {
  TensorFile file = sample_file();
  file.tensors.emplace("z/int", Tensor::zeros({2}, DType::i32));
  try {
    write_tensor_file(path("m.h5"), file);
    FAIL() << "write_tensor_file did not throw";
  } catch (const Error& error) {
    EXPECT_THAT(error.what(), HasSubstr("z/int"));
    EXPECT_THAT(error.what(), HasSubstr("float32"));
  }
  EXPECT_EQ(folder_listing(), std::vector<std::string>{});
}

TEST_F(TensorFileTest, FailedWriteKeepsTheOldFile) {
  write_tensor_file(path("m.h5"), sample_file());
  const std::string before = read_bytes(path("m.h5"));
  TensorFile bad = sample_file();
  bad.tensors.emplace("z/int", Tensor::zeros({2}, DType::i32));
  EXPECT_THROW(write_tensor_file(path("m.h5"), bad), Error);
  EXPECT_TRUE(read_bytes(path("m.h5")) == before) << "the old file was changed";
  EXPECT_EQ(folder_listing(), std::vector<std::string>{"m.h5"});
}

}  // namespace
}  // namespace voxmamba::io
