#include "io/nifti_header.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
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

bool has_nifti_ending(const std::string& path) { return ends_with(path, ".nii") || ends_with(path, ".nii.gz"); }

NiftiHeader read_nifti_header(const std::string& path) {
  gzFile file = gzopen(path.c_str(), "rb");  // reads plain files too
  if (file == nullptr) throw Error(path, "cannot open");
  std::vector<unsigned char> bytes;
  unsigned char buffer[1 << 16];
  int count = 0;
  while ((count = gzread(file, buffer, sizeof buffer)) > 0) {
    if (bytes.size() < 544) bytes.insert(bytes.end(), buffer, buffer + std::min<int>(count, 544));
    // Only the header is kept; the rest is counted to detect truncation.
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
    header.version = 2;
    if (bytes.size() < 540) throw Error(path, "NIfTI-2 header is truncated");
    for (int i = 0; i < 8; ++i) header.dim[i] = read_at<std::int64_t>(bytes, 16 + 8 * i, swap);
  } else {
    throw Error(path, "not a NIfTI file (header size " + std::to_string(header_size) + ")");
  }
  if (truncated_stream) header.file_bytes = -1;  // the compressed stream itself is cut
  return header;
}

}  // namespace voxmamba::io
