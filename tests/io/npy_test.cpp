// io::read_npy / io::write_npy: round trips, exchange with real numpy, and one-line errors
// that name the file and the problem.
#include "io/npy.h"

#include "tests/file_helpers.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

namespace voxmamba::io {
namespace {

namespace fs = std::filesystem;
using namespace voxmamba::testing;
using ::testing::HasSubstr;

// An NPY version 1.0 file with the given header dict and payload, padded as numpy pads it.
std::string npy_bytes(std::string header, const std::string& payload) {
  const std::size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  std::string bytes("\x93NUMPY\x01\x00", 8);
  bytes += static_cast<char>(header.size() & 0xff);
  bytes += static_cast<char>(header.size() >> 8);
  return bytes + header + payload;
}

class NpyTest : public ::testing::Test {
 protected:
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // Expects read_npy(file) to throw an Error whose message names the file and contains `word`.
  void expect_read_error(const std::string& file, const std::string& word) {
    try {
      read_npy(file);
      FAIL() << "read_npy(" << file << ") did not throw";
    } catch (const Error& error) {
      const std::string message = error.what();
      EXPECT_THAT(message, HasSubstr(file));
      EXPECT_THAT(message, HasSubstr(word));
      EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    }
  }

  TempFolder folder_{"npy_test"};
  const fs::path& dir_ = folder_.path();
};

template <typename T> Tensor make_tensor(const Shape& shape, DType dtype) {
  Tensor tensor = Tensor::empty(shape, dtype);
  T* data = tensor.data<T>();
  for (std::int64_t i = 0; i < tensor.numel(); ++i) {
    if constexpr (std::is_same_v<T, float>) {
      data[i] = 0.25f * static_cast<float>(i) - 3.5f;
    } else if constexpr (std::is_same_v<T, std::int32_t>) {
      data[i] = static_cast<std::int32_t>(i * 1000003 - 7000000);
    } else {
      data[i] = static_cast<std::uint8_t>((i * 37 + 5) & 0xff);
    }
  }
  return tensor;
}

template <typename T> void expect_round_trip(const std::string& file, DType dtype) {
  const std::vector<Shape> shapes = {{7},          {0},          {3, 5},          {2, 0},      {2, 3, 4},
                                     {1, 2, 3, 5}, {3, 1, 0, 2}, {1, 3, 2, 4, 2}, {2, 2, 2, 2, 0}};
  for (const Shape& shape : shapes) {
    SCOPED_TRACE(shape_string(shape) + " " + dtype_name(dtype));
    const Tensor original = make_tensor<T>(shape, dtype);
    write_npy(file, original);
    const Tensor loaded = read_npy(file);
    EXPECT_EQ(loaded.dtype(), dtype);
    EXPECT_EQ(loaded.shape(), shape);
    ASSERT_EQ(loaded.bytes(), original.bytes());
    if (original.bytes() > 0) {
      EXPECT_EQ(std::memcmp(loaded.raw_data(), original.raw_data(), original.bytes()), 0);
    }
    // The header is padded so that the data starts at a multiple of 64 (NPY spec).
    const std::size_t size = fs::file_size(file);
    EXPECT_EQ((size - original.bytes()) % 64, 0u);
  }
}

TEST_F(NpyTest, RoundTripFloat32AllRanks) { expect_round_trip<float>(path("a.npy"), DType::f32); }
TEST_F(NpyTest, RoundTripInt32AllRanks) { expect_round_trip<std::int32_t>(path("a.npy"), DType::i32); }
TEST_F(NpyTest, RoundTripUint8AllRanks) { expect_round_trip<std::uint8_t>(path("a.npy"), DType::u8); }

TEST_F(NpyTest, WriteLeavesNoTemporaryBehind) {
  write_npy(path("a.npy"), make_tensor<float>({2, 3}, DType::f32));
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir_)) names.push_back(entry.path().filename().string());
  EXPECT_EQ(names, std::vector<std::string>{"a.npy"});
}

TEST_F(NpyTest, WriteReplacesAnExistingFile) {
  write_npy(path("a.npy"), make_tensor<float>({100}, DType::f32));
  write_npy(path("a.npy"), make_tensor<std::uint8_t>({3}, DType::u8));
  const Tensor loaded = read_npy(path("a.npy"));
  EXPECT_EQ(loaded.dtype(), DType::u8);
  EXPECT_EQ(loaded.shape(), Shape{3});
}

TEST_F(NpyTest, WriteIntoMissingFolderNamesThePath) {
  const std::string file = path("no/such/folder/a.npy");
  try {
    write_npy(file, make_tensor<float>({2}, DType::f32));
    FAIL() << "write_npy did not throw";
  } catch (const Error& error) {
    EXPECT_THAT(error.what(), HasSubstr(file));
  }
  EXPECT_FALSE(fs::exists(path("no")));
}

TEST_F(NpyTest, ReadsFilesWrittenByNumpy) {
  if (!python_has("numpy")) GTEST_SKIP() << kPython << " has no numpy";
  const std::string script = R"(
import numpy as np
np.save('f32.npy', (np.arange(24, dtype='<f4') * 0.5 - 3).reshape(2, 3, 4))
np.save('i32.npy', np.array([[-2147483648, -1, 0], [1, 7, 2147483647]], dtype='<i4'))
np.save('u8.npy', np.arange(250, 256, dtype='u1').reshape(1, 2, 3, 1, 1))
np.save('vec.npy', np.array([1.5, -2.25, 1e30], dtype='<f4'))
np.save('empty.npy', np.zeros((4, 0, 2), dtype='<f4'))
with open('v2.npy', 'wb') as f:
    np.lib.format.write_array(f, np.arange(6, dtype='<i4').reshape(3, 2), version=(2, 0))
with open('v3.npy', 'wb') as f:
    np.lib.format.write_array(f, np.arange(4, dtype='u1'), version=(3, 0))
)";
  ASSERT_EQ(run_python(dir_, script), 0) << read_bytes(dir_ / "python.log");

  const Tensor f32 = read_npy(path("f32.npy"));
  ASSERT_EQ(f32.dtype(), DType::f32);
  EXPECT_EQ(f32.shape(), (Shape{2, 3, 4}));
  for (int i = 0; i < 24; ++i) EXPECT_EQ(f32.data<float>()[i], 0.5f * static_cast<float>(i) - 3.0f) << i;

  const Tensor i32 = read_npy(path("i32.npy"));
  ASSERT_EQ(i32.dtype(), DType::i32);
  EXPECT_EQ(i32.shape(), (Shape{2, 3}));
  const std::vector<std::int32_t> expected_i32 = {INT32_MIN, -1, 0, 1, 7, INT32_MAX};
  EXPECT_EQ(std::vector<std::int32_t>(i32.data<std::int32_t>(), i32.data<std::int32_t>() + 6), expected_i32);

  const Tensor u8 = read_npy(path("u8.npy"));
  ASSERT_EQ(u8.dtype(), DType::u8);
  EXPECT_EQ(u8.shape(), (Shape{1, 2, 3, 1, 1}));
  const std::vector<std::uint8_t> expected_u8 = {250, 251, 252, 253, 254, 255};
  EXPECT_EQ(std::vector<std::uint8_t>(u8.data<std::uint8_t>(), u8.data<std::uint8_t>() + 6), expected_u8);

  const Tensor vec = read_npy(path("vec.npy"));
  EXPECT_EQ(vec.shape(), Shape{3});
  EXPECT_EQ(vec.data<float>()[0], 1.5f);
  EXPECT_EQ(vec.data<float>()[1], -2.25f);
  EXPECT_EQ(vec.data<float>()[2], 1e30f);

  const Tensor empty = read_npy(path("empty.npy"));
  EXPECT_EQ(empty.dtype(), DType::f32);
  EXPECT_EQ(empty.shape(), (Shape{4, 0, 2}));

  const Tensor v2 = read_npy(path("v2.npy"));
  ASSERT_EQ(v2.dtype(), DType::i32);
  EXPECT_EQ(v2.shape(), (Shape{3, 2}));
  for (int i = 0; i < 6; ++i) EXPECT_EQ(v2.data<std::int32_t>()[i], i);

  const Tensor v3 = read_npy(path("v3.npy"));
  ASSERT_EQ(v3.dtype(), DType::u8);
  EXPECT_EQ(v3.shape(), Shape{4});
  for (int i = 0; i < 4; ++i) EXPECT_EQ(v3.data<std::uint8_t>()[i], i);
}

TEST_F(NpyTest, NumpyReadsFilesWeWrite) {
  if (!python_has("numpy")) GTEST_SKIP() << kPython << " has no numpy";
  write_npy(path("f32.npy"), make_tensor<float>({2, 3, 4}, DType::f32));
  write_npy(path("i32.npy"), make_tensor<std::int32_t>({5}, DType::i32));
  write_npy(path("u8.npy"), make_tensor<std::uint8_t>({1, 2, 3, 4, 5}, DType::u8));
  write_npy(path("empty.npy"), Tensor::zeros({3, 0}, DType::f32));
  const std::string script = R"(
import numpy as np
def check(name, dtype, shape, expected):
    a = np.load(name, allow_pickle=False)
    assert a.dtype == np.dtype(dtype), (name, a.dtype)
    assert a.shape == shape, (name, a.shape)
    assert a.flags['C_CONTIGUOUS']
    assert np.array_equal(a, np.asarray(expected, dtype=dtype).reshape(shape)), (name, a)
i = np.arange(24)
check('f32.npy', '<f4', (2, 3, 4), 0.25 * i - 3.5)
i = np.arange(5, dtype=np.int64)
check('i32.npy', '<i4', (5,), i * 1000003 - 7000000)
i = np.arange(120)
check('u8.npy', '|u1', (1, 2, 3, 4, 5), (i * 37 + 5) & 0xff)
check('empty.npy', '<f4', (3, 0), [])
print('ok')
)";
  EXPECT_EQ(run_python(dir_, script), 0) << read_bytes(dir_ / "python.log");
}

TEST_F(NpyTest, MissingFile) { expect_read_error(path("missing.npy"), "no such file"); }

TEST_F(NpyTest, TextFileIsNotAnNpy) {
  std::ofstream(path("text.npy")) << "this is not an array\n1 2 3\n";
  expect_read_error(path("text.npy"), "not an NPY");
}

TEST_F(NpyTest, EmptyFileIsNotAnNpy) {
  std::ofstream{path("empty.npy")};
  expect_read_error(path("empty.npy"), "not an NPY");
}

TEST_F(NpyTest, TruncatedData) {
  write_npy(path("a.npy"), make_tensor<float>({4, 8, 8}, DType::f32));
  fs::resize_file(path("a.npy"), fs::file_size(path("a.npy")) - 100);
  expect_read_error(path("a.npy"), "truncated");
}

TEST_F(NpyTest, TruncatedHeader) {
  write_npy(path("a.npy"), make_tensor<float>({4, 8, 8}, DType::f32));
  fs::resize_file(path("a.npy"), 30);
  expect_read_error(path("a.npy"), "truncated");
}

TEST_F(NpyTest, FortranOrder) {
  write_bytes(path("f.npy"), npy_bytes("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }",
                                       std::string(24, '\0')));
  expect_read_error(path("f.npy"), "Fortran");
}

TEST_F(NpyTest, FortranOrderFromNumpy) {
  if (!python_has("numpy")) GTEST_SKIP() << kPython << " has no numpy";
  ASSERT_EQ(run_python(dir_, "import numpy as np\n"
                             "np.save('f.npy', np.asfortranarray(np.zeros((2, 3), dtype='<f4')))\n"),
            0);
  expect_read_error(path("f.npy"), "Fortran");
}

TEST_F(NpyTest, UnsupportedDtypeFloat64) {
  write_bytes(path("d.npy"), npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }",
                                       std::string(24, '\0')));
  expect_read_error(path("d.npy"), "dtype");
  expect_read_error(path("d.npy"), "<f8");
}

TEST_F(NpyTest, UnsupportedDtypeBigEndian) {
  write_bytes(path("b.npy"), npy_bytes("{'descr': '>f4', 'fortran_order': False, 'shape': (3,), }",
                                       std::string(12, '\0')));
  expect_read_error(path("b.npy"), "dtype");
}

TEST_F(NpyTest, UnsupportedVersion) {
  std::string bytes = npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", std::string(4, '\0'));
  bytes[6] = 9;
  write_bytes(path("v.npy"), bytes);
  expect_read_error(path("v.npy"), "version");
}

TEST_F(NpyTest, HeaderWithoutShape) {
  write_bytes(path("s.npy"), npy_bytes("{'descr': '<f4', 'fortran_order': False, }", std::string(4, '\0')));
  expect_read_error(path("s.npy"), "shape");
}

TEST_F(NpyTest, NegativeShapeNamesTheFile) {
  write_bytes(path("n.npy"), npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (-2, 3), }",
                                       std::string(24, '\0')));
  expect_read_error(path("n.npy"), "shape");
}

// A header that promises far more data than the file holds is reported as truncated (with
// the file's name), not as an allocation failure.
TEST_F(NpyTest, HugeShapeInSmallFileIsTruncated) {
  write_bytes(path("h.npy"), npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000), }",
                                       std::string(24, '\0')));
  expect_read_error(path("h.npy"), "truncated");
}

}  // namespace
}  // namespace voxmamba::io
