#include "io/npy.h"

#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <regex>
#include <sstream>

#include "io/atomic_file.h"

namespace voxmamba::io {
namespace {

const char kMagic[] = "\x93NUMPY";

struct Descriptor {
  const char* text;
  DType dtype;
};
const Descriptor kDescriptors[] = {{"<f4", DType::f32}, {"<i4", DType::i32}, {"|u1", DType::u8}};

std::string descriptor_of(DType dtype, const std::string& path) {
  for (const Descriptor& d : kDescriptors) {
    if (d.dtype == dtype) return d.text;
  }
  throw Error(path, std::string("cannot write ") + dtype_name(dtype) + " as NPY");
}

// The header is a Python dict literal; its three keys are all we read.
std::string dict_value(const std::string& header, const std::string& key, const std::string& path) {
  const std::regex pattern("'" + key + "'\\s*:\\s*('[^']*'|True|False|\\([^)]*\\))");
  std::smatch match;
  if (!std::regex_search(header, match, pattern)) throw Error(path, "NPY header has no '" + key + "'");
  return match[1].str();
}

}  // namespace

Tensor read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path, "no such file or not readable");
  char magic[6] = {};
  unsigned char version[2] = {};
  in.read(magic, 6);
  in.read(reinterpret_cast<char*>(version), 2);
  if (!in || std::memcmp(magic, kMagic, 6) != 0) throw Error(path, "not an NPY file");
  std::uint32_t header_length = 0;
  if (version[0] == 1) {
    unsigned char bytes[2];
    in.read(reinterpret_cast<char*>(bytes), 2);
    header_length = bytes[0] | (bytes[1] << 8);
  } else if (version[0] == 2 || version[0] == 3) {
    unsigned char bytes[4];
    in.read(reinterpret_cast<char*>(bytes), 4);
    header_length = bytes[0] | (bytes[1] << 8) | (bytes[2] << 16) | (static_cast<std::uint32_t>(bytes[3]) << 24);
  } else {
    throw Error(path, "unsupported NPY version " + std::to_string(version[0]));
  }
  if (!in || header_length > (1u << 20)) throw Error(path, "NPY header is truncated or corrupt");
  std::string header(header_length, '\0');
  in.read(header.data(), header_length);
  if (!in) throw Error(path, "NPY header is truncated");

  const std::string descr = dict_value(header, "descr", path);
  const std::string descr_text = descr.substr(1, descr.size() - 2);
  DType dtype = DType::f32;
  bool known = false;
  for (const Descriptor& d : kDescriptors) {
    if (descr_text == d.text || (descr_text == "=f4" && d.dtype == DType::f32)) {
      dtype = d.dtype;
      known = true;
    }
  }
  if (!known) throw Error(path, "unsupported NPY dtype '" + descr_text + "' (expected float32 <f4, int32 <i4 or uint8 |u1)");
  if (dict_value(header, "fortran_order", path) != "False") {
    throw Error(path, "NPY array is in Fortran order; save it in C order (numpy.ascontiguousarray)");
  }
  Shape shape;
  const std::string shape_text = dict_value(header, "shape", path);
  std::stringstream items(shape_text.substr(1, shape_text.size() - 2));
  for (std::string item; std::getline(items, item, ',');) {
    if (item.find_first_not_of(" ") == std::string::npos) continue;
    try {
      shape.push_back(std::stoll(item));
    } catch (const std::exception&) {
      throw Error(path, "NPY shape '" + shape_text + "' is malformed");
    }
  }
  // Check the shape against the bytes left in the file before allocating anything.
  bool has_zero = false;
  for (std::int64_t size : shape) {
    if (size < 0) throw Error(path, "NPY shape '" + shape_text + "' has a negative size");
    has_zero = has_zero || size == 0;
  }
  const std::streamoff data_start = in.tellg();
  in.seekg(0, std::ios::end);
  const std::uint64_t available = static_cast<std::uint64_t>(in.tellg() - data_start);
  in.seekg(data_start);
  std::uint64_t needed = has_zero ? 0 : dtype_size(dtype);
  bool overflow = false;
  for (std::int64_t size : shape) {
    if (has_zero) break;
    if (needed > std::numeric_limits<std::uint64_t>::max() / static_cast<std::uint64_t>(size)) {
      overflow = true;
      break;
    }
    needed *= static_cast<std::uint64_t>(size);
  }
  if (overflow || needed > available) {
    throw Error(path, "NPY data is truncated: shape " + shape_string(shape) + " needs " +
                          (overflow ? std::string("more than 2^64") : std::to_string(needed)) + " bytes, the file has " +
                          std::to_string(available));
  }
  Tensor tensor = Tensor::empty(shape, dtype);
  in.read(static_cast<char*>(tensor.raw_data()), static_cast<std::streamsize>(tensor.bytes()));
  if (static_cast<std::size_t>(in.gcount()) != tensor.bytes()) {
    throw Error(path, "NPY data is truncated: expected " + std::to_string(tensor.bytes()) + " bytes for shape " +
                          shape_string(shape));
  }
  return tensor;
}

void write_npy(const std::string& path, const Tensor& tensor) {
  std::string shape_text = "(";
  for (std::int64_t size : tensor.shape()) shape_text += std::to_string(size) + ",";
  if (tensor.rank() > 1) shape_text.pop_back();  // numpy writes (3,) but (1, 2)
  shape_text += ")";
  std::string header =
      "{'descr': '" + descriptor_of(tensor.dtype(), path) + "', 'fortran_order': False, 'shape': " + shape_text + ", }";
  // Pad so that magic + version + length + header + newline is a multiple of 64 (NPY spec).
  const std::size_t unpadded = 6 + 2 + 2 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  write_atomically(path, [&](const std::string& temporary) {
    std::ofstream out(temporary, std::ios::binary);
    if (!out) throw Error(path, "cannot create file (folder missing or not writable?)");
    out.write(kMagic, 6);
    const char version[2] = {1, 0};
    out.write(version, 2);
    const char length[2] = {static_cast<char>(header.size() & 0xff), static_cast<char>(header.size() >> 8)};
    out.write(length, 2);
    out << header;
    out.write(static_cast<const char*>(tensor.raw_data()), static_cast<std::streamsize>(tensor.bytes()));
    out.close();
    if (!out) throw Error(path, "cannot write file (disk full?)");
  });
}

}  // namespace voxmamba::io
