#include "io/nifti_header.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "core/error.h"

namespace voxmamba::io {
namespace {

template <typename T> T read_at(const std::vector<unsigned char>& bytes, std::size_t offset, bool swap) {
  T value;
  unsigned char raw[sizeof(T)];
  std::memcpy(raw, bytes.data() + offset, sizeof(T));
  if (swap) {
    for (std::size_t i = 0; i < sizeof(T) / 2; ++i) std::swap(raw[i], raw[sizeof(T) - 1 - i]);
  }
  std::memcpy(&value, raw, sizeof(T));
  return value;
}

bool ends_with(const std::string& text, const std::string& end) {
  return text.size() >= end.size() && text.compare(text.size() - end.size(), end.size(), end) == 0;
}

}  // namespace

bool lps_geometry_from_ras_affine(const double ras[3][4], std::array<double, 3>& spacing,
                                  std::array<double, 9>& direction, std::array<double, 3>& origin) {
  const double to_lps[3] = {-1, -1, 1};
  for (int c = 0; c < 3; ++c) {
    double column[3], squared = 0;
    for (int r = 0; r < 3; ++r) {
      column[r] = to_lps[r] * ras[r][c];
      squared += column[r] * column[r];
    }
    const double length = std::sqrt(squared);
    if (!(length > 0)) return false;
    spacing[c] = length;
    for (int r = 0; r < 3; ++r) direction[r * 3 + c] = column[r] / length + 0.0;  // "+ 0.0": no -0.0
  }
  for (int r = 0; r < 3; ++r) origin[r] = to_lps[r] * ras[r][3] + 0.0;
  return true;
}

bool has_nifti_ending(const std::string& path) { return ends_with(path, ".nii") || has_gzipped_nifti_ending(path); }
bool has_gzipped_nifti_ending(const std::string& path) { return ends_with(path, ".nii.gz"); }

// Counts NaN/infinite values of a float32 (`bytes_per_value` 4) or float64 (8) stream fed in
// arbitrary pieces, from byte `data_offset` on.
class NonFiniteCounter {
 public:
  NonFiniteCounter(std::int64_t data_offset, int bytes_per_value, bool swap)
      : offset_(data_offset), width_(bytes_per_value), swap_(swap) {}
  void feed(const unsigned char* bytes, std::int64_t count, std::int64_t position) {
    if (width_ == 0) return;
    for (std::int64_t i = 0; i < count; ++i) {
      if (position + i < offset_) continue;
      value_[filled_++] = bytes[i];
      if (filled_ < width_) continue;
      filled_ = 0;
      if (swap_) std::reverse(value_, value_ + width_);
      if (width_ == 4) {
        float v;
        std::memcpy(&v, value_, 4);
        count_ += !std::isfinite(v);
      } else {
        double v;
        std::memcpy(&v, value_, 8);
        count_ += !std::isfinite(v);
      }
    }
  }
  std::int64_t count() const { return count_; }

 private:
  std::int64_t offset_;
  int width_;
  bool swap_;
  unsigned char value_[8] = {};
  int filled_ = 0;
  std::int64_t count_ = 0;
};

NiftiHeader read_nifti_header(const std::string& path) {
  gzFile file = gzopen(path.c_str(), "rb");  // reads plain files too
  if (file == nullptr) throw Error(path, "cannot open");
  std::vector<unsigned char> bytes;
  unsigned char buffer[1 << 16];
  int count = 0;
  std::int64_t position = 0;
  std::unique_ptr<NonFiniteCounter> non_finite;
  while ((count = gzread(file, buffer, sizeof buffer)) > 0) {
    std::int64_t used = 0;
    if (bytes.size() < 348) {  // the header, kept; the rest is only counted and scanned
      used = std::min<std::int64_t>(count, 348 - static_cast<std::int64_t>(bytes.size()));
      bytes.insert(bytes.end(), buffer, buffer + used);
      if (bytes.size() == 348) {
        const bool swap = read_at<std::int32_t>(bytes, 0, false) != 348 && read_at<std::int32_t>(bytes, 0, false) != 540;
        if (read_at<std::int32_t>(bytes, 0, swap) == 348) {
          const std::int16_t datatype = read_at<std::int16_t>(bytes, 70, swap);
          const int width = datatype == 16 ? 4 : (datatype == 64 ? 8 : 0);  // NIFTI_TYPE_FLOAT32 / FLOAT64
          non_finite = std::make_unique<NonFiniteCounter>(static_cast<std::int64_t>(read_at<float>(bytes, 108, swap)),
                                                          width, swap);
        }
      }
    }
    if (non_finite) non_finite->feed(buffer + used, count - used, position + used);
    position += count;
  }
  int error_code = Z_OK;
  gzerror(file, &error_code);
  NiftiHeader header;
  header.file_bytes = gztell(file);
  gzclose(file);
  const bool truncated_stream = count < 0 || (error_code != Z_OK && error_code != Z_STREAM_END);
  if (bytes.size() < 348) throw Error(path, "NIfTI header is truncated");
  const std::int32_t size_little = read_at<std::int32_t>(bytes, 0, false);
  const bool swap = size_little != 348 && size_little != 540;
  const std::int32_t header_size = read_at<std::int32_t>(bytes, 0, swap);
  if (header_size == 348) {
    header.version = 1;
    for (int i = 0; i < 8; ++i) header.dim[i] = read_at<std::int16_t>(bytes, 40 + 2 * i, swap);
    const std::int64_t bits = read_at<std::int16_t>(bytes, 72, swap);
    const auto offset = static_cast<std::int64_t>(read_at<float>(bytes, 108, swap));
    header.sform_code = read_at<std::int16_t>(bytes, 254, swap);
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 4; ++c) header.srow[r][c] = read_at<float>(bytes, 280 + 16 * r + 4 * c, swap);
    std::int64_t voxels = 1;
    const std::int64_t rank = std::clamp<std::int64_t>(header.dim[0], 1, 7);
    for (int i = 1; i <= rank; ++i) voxels *= std::max<std::int64_t>(1, header.dim[i]);
    header.data_bytes = std::max<std::int64_t>(offset, 352) + voxels * bits / 8;
  } else if (header_size == 540) {
    header.version = 2;  // read in full by io/nifti2_reader.cpp
  } else {
    throw Error(path, "not a NIfTI file (header size " + std::to_string(header_size) + ")");
  }
  if (truncated_stream) header.file_bytes = -1;  // the compressed stream itself is cut
  if (non_finite) header.non_finite_voxels = non_finite->count();
  return header;
}

int nifti_version(const std::string& path) {
  gzFile file = gzopen(path.c_str(), "rb");  // reads plain files too
  if (file == nullptr) return 0;
  std::vector<unsigned char> bytes(4);
  const int count = gzread(file, bytes.data(), 4);
  gzclose(file);
  if (count != 4) return 0;
  for (const bool swap : {false, true}) {
    const std::int32_t size = read_at<std::int32_t>(bytes, 0, swap);
    if (size == 348) return 1;
    if (size == 540) return 2;
  }
  return 0;
}

}  // namespace voxmamba::io
