#include "io/nifti2_reader.h"

#include "io/nifti_header.h"

#include <zlib.h>

#include <cmath>
#include <cstring>
#include <vector>

namespace voxmamba::io {
namespace {

// Field offsets of the NIfTI-2 header (nifti2.h).
constexpr int kDatatype = 12, kDim = 16, kPixdim = 104, kVoxOffset = 168, kSclSlope = 176, kSclInter = 184,
              kQformCode = 344, kSformCode = 348, kQuatern = 352, kQoffset = 376, kSrow = 400;

template <typename T> T field(const unsigned char* header, int offset) {
  T value;
  std::memcpy(&value, header + offset, sizeof(T));
  return value;
}

struct Reader {
  gzFile file;
  explicit Reader(const std::string& path) : file(gzopen(path.c_str(), "rb")) {}
  ~Reader() {
    if (file) gzclose(file);
  }
  bool read(void* into, std::size_t bytes) {
    std::size_t done = 0;
    while (done < bytes) {
      const int n = gzread(file, static_cast<char*>(into) + done, static_cast<unsigned>(std::min<std::size_t>(bytes - done, 1u << 30)));
      if (n <= 0) return false;
      done += static_cast<std::size_t>(n);
    }
    return true;
  }
};

template <typename T> void convert(const std::vector<unsigned char>& raw, float* out, std::int64_t count) {
  for (std::int64_t i = 0; i < count; ++i) {
    T value;
    std::memcpy(&value, raw.data() + i * sizeof(T), sizeof(T));
    out[i] = static_cast<float>(value);
  }
}

}  // namespace

Volume read_nifti2(const std::string& path) {
  Reader reader(path);
  unsigned char header[540];
  if (!reader.file || !reader.read(header, sizeof header)) throw Error(path, "NIfTI-2 header is truncated");
  if (field<std::int32_t>(header, 0) != 540) throw Error(path, "not a little-endian NIfTI-2 file");
  std::int64_t dim[8];
  for (int i = 0; i < 8; ++i) dim[i] = field<std::int64_t>(header, kDim + 8 * i);
  if (dim[0] >= 4 && dim[4] > 1) {
    throw Error(path, "is a 4D NIfTI-2 image with " + std::to_string(dim[4]) +
                          " volumes; VoxMamba reads 3D images (one file per channel)");
  }
  const std::array<std::int64_t, 3> size{std::max<std::int64_t>(1, dim[1]), std::max<std::int64_t>(1, dim[2]),
                                         std::max<std::int64_t>(1, dim[3])};
  Volume volume;
  volume.geometry.size = size;
  const std::int64_t count = size[0] * size[1] * size[2];
  const std::int16_t datatype = field<std::int16_t>(header, kDatatype);
  struct Type { std::int16_t code; int bytes; const char* name; };
  const Type types[] = {{2, 1, "uint8"}, {256, 1, "int8"}, {4, 2, "int16"}, {512, 2, "uint16"}, {8, 4, "int32"},
                        {768, 4, "uint32"}, {16, 4, "float32"}, {64, 8, "float64"}};
  const Type* type = nullptr;
  for (const Type& t : types) type = t.code == datatype ? &t : type;
  if (!type) throw Error(path, "NIfTI-2 datatype " + std::to_string(datatype) + " is not supported");
  volume.pixel_type = type->name;
  // Skip extensions up to vox_offset, then read the voxels.
  const std::int64_t offset = field<std::int64_t>(header, kVoxOffset);
  std::vector<unsigned char> skip(static_cast<std::size_t>(std::max<std::int64_t>(0, offset - 540)));
  std::vector<unsigned char> raw(static_cast<std::size_t>(count * type->bytes));
  if ((!skip.empty() && !reader.read(skip.data(), skip.size())) || !reader.read(raw.data(), raw.size())) {
    throw Error(path, "truncated or corrupt file: fewer voxels than the NIfTI-2 header declares");
  }
  volume.voxels = Tensor::empty({size[2], size[1], size[0], 1});
  float* out = volume.voxels.data<float>();
  switch (datatype) {
    case 2: convert<std::uint8_t>(raw, out, count); break;
    case 256: convert<std::int8_t>(raw, out, count); break;
    case 4: convert<std::int16_t>(raw, out, count); break;
    case 512: convert<std::uint16_t>(raw, out, count); break;
    case 8: convert<std::int32_t>(raw, out, count); break;
    case 768: convert<std::uint32_t>(raw, out, count); break;
    case 16: convert<float>(raw, out, count); break;
    case 64: convert<double>(raw, out, count); break;
  }
  const double slope = field<double>(header, kSclSlope), intercept = field<double>(header, kSclInter);
  if (std::isfinite(slope) && slope != 0 && !(slope == 1 && intercept == 0)) {
    for (std::int64_t i = 0; i < count; ++i) out[i] = static_cast<float>(out[i] * slope + intercept);
  }
  for (std::int64_t i = 0; i < count; ++i) {
    if (!std::isfinite(out[i])) throw Error(path, "holds NaN or infinite voxel values");
  }
  // Geometry: voxel (i, j, k) -> RAS via the sform or qform, then RAS -> LPS.
  double ras[3][4] = {};
  double pixdim[8];
  for (int i = 0; i < 8; ++i) pixdim[i] = field<double>(header, kPixdim + 8 * i);
  if (field<std::int32_t>(header, kSformCode) > 0) {
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 4; ++c) ras[r][c] = field<double>(header, kSrow + 32 * r + 8 * c);
  } else if (field<std::int32_t>(header, kQformCode) > 0) {
    const double b = field<double>(header, kQuatern), c = field<double>(header, kQuatern + 8),
                 d = field<double>(header, kQuatern + 16);
    const double a = std::sqrt(std::max(0.0, 1.0 - (b * b + c * c + d * d)));
    const double qfac = pixdim[0] < 0 ? -1.0 : 1.0;
    const double rotation[3][3] = {{a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)},
                                   {2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)},
                                   {2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b}};
    const double scale[3] = {pixdim[1], pixdim[2], qfac * pixdim[3]};
    for (int r = 0; r < 3; ++r) {
      for (int k = 0; k < 3; ++k) ras[r][k] = rotation[r][k] * scale[k];
      ras[r][3] = field<double>(header, kQoffset + 8 * r);
    }
  } else {
    for (int k = 0; k < 3; ++k) ras[k][k] = pixdim[k + 1] > 0 ? pixdim[k + 1] : 1.0;
  }
  if (!lps_geometry_from_ras_affine(ras, volume.geometry.spacing, volume.geometry.direction, volume.geometry.origin)) {
    throw Error(path, "NIfTI-2 transform is degenerate");
  }
  return volume;
}

}  // namespace voxmamba::io
