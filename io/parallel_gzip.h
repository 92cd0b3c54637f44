#pragma once
// gzip (RFC 1952) compression spread over the thread pool, for the .nii.gz label maps that
// `segment` writes: one thread took 0.29 s of a 256^3 run's 8.2 s on the GPU machine at
// zlib's level 6. The input is cut into chunks that are deflated independently and laid
// end to end as one stream, as pigz does: each chunk but the last ends on a byte boundary
// (a sync flush) and starts with the preceding 32 KiB of input as its dictionary, so that
// matches may reach back across the cut as they would in one pass. Any gzip reader reads
// the result as a single member; it decompresses to exactly the input.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace voxmamba::io {

// The deflate level ITK 5.2 writes .nii.gz at (zlib's default): its files' deflate streams are
// byte for byte zlib's at level 6. Chunked, a 256^3 label map's file is 0.03% larger
// (489,621 bytes against 489,457), and written in 0.11 s instead of 0.16 on this project's
// 2-core development machine.
constexpr int kGzipLevel = 6;

// `size` bytes from `data` as one gzip member at zlib `level` (1 to 9), in chunks of
// `chunk_bytes` (at least 64 KiB) compressed on the thread pool. Throws Error if zlib fails.
std::vector<std::uint8_t> gzip_in_parallel(const std::uint8_t* data, std::size_t size, int level = kGzipLevel,
                                           std::size_t chunk_bytes = std::size_t(1) << 19);

// Writes the gzip compression of the file at `from` (any bytes) to `to`, whole before it
// returns; `from` stays. Errors name the file.
void gzip_file_in_parallel(const std::string& from, const std::string& to, int level = kGzipLevel);

}  // namespace voxmamba::io
