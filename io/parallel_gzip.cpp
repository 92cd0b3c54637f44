#include "io/parallel_gzip.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "core/error.h"
#include "core/thread_pool.h"

namespace voxmamba::io {
namespace {

constexpr std::size_t kWindow = 32768;  // deflate's largest match distance (RFC 1951)

struct DeflatedChunk {
  std::vector<std::uint8_t> bytes;
  uLong crc = 0;             // of the chunk's input
  std::size_t input_size = 0;
};

// Raw deflate (no zlib or gzip wrapper) of [begin, end) of `data`, primed with the 32 KiB
// before `begin`; the last chunk ends the stream, the others end on a byte boundary with a
// sync flush (an empty stored block) so that the next chunk's blocks can follow directly.
DeflatedChunk deflate_chunk(const std::uint8_t* data, std::size_t begin, std::size_t end, bool last,
                            int level) {
  z_stream stream{};
  if (deflateInit2(&stream, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    throw Error("gzip: cannot start zlib's deflate at level " + std::to_string(level));
  }
  std::unique_ptr<z_stream, int (*)(z_stream*)> owner(&stream, deflateEnd);
  if (begin > 0) {
    const std::size_t primed = std::min(begin, kWindow);
    if (deflateSetDictionary(&stream, data + begin - primed, static_cast<uInt>(primed)) != Z_OK) {
      throw Error("gzip: zlib refused the previous chunk's window as a dictionary");
    }
  }
  DeflatedChunk chunk;
  const std::size_t size = end - begin;
  // deflateBound covers the data; the flush adds at most a few bytes, the loop any more.
  chunk.bytes.resize(deflateBound(&stream, static_cast<uLong>(size)) + 64);
  stream.next_in = const_cast<Bytef*>(data + begin);
  stream.avail_in = static_cast<uInt>(size);
  std::size_t written = 0;
  const int flush = last ? Z_FINISH : Z_SYNC_FLUSH;
  for (;;) {
    stream.next_out = chunk.bytes.data() + written;
    stream.avail_out = static_cast<uInt>(chunk.bytes.size() - written);
    const int status = deflate(&stream, flush);
    if (status != Z_OK && status != Z_STREAM_END && status != Z_BUF_ERROR) {
      throw Error("gzip: zlib's deflate failed (" + std::to_string(status) + ")");
    }
    written = chunk.bytes.size() - stream.avail_out;
    const bool done = last ? status == Z_STREAM_END : stream.avail_in == 0 && stream.avail_out > 0;
    if (done) break;
    chunk.bytes.resize(chunk.bytes.size() * 2);
  }
  chunk.bytes.resize(written);
  chunk.crc = crc32(crc32(0L, Z_NULL, 0), data + begin, static_cast<uInt>(size));
  chunk.input_size = size;
  return chunk;
}

void put_le32(std::vector<std::uint8_t>& out, std::uint32_t value) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::uint8_t>(value >> (8 * i)));
}

}  // namespace

std::vector<std::uint8_t> gzip_in_parallel(const std::uint8_t* data, std::size_t size, int level,
                                           std::size_t chunk_bytes) {
  if (level < 1 || level > 9) throw Error("gzip: the level must be 1 to 9, not " + std::to_string(level));
  // Chunks much smaller than the window would spend more on priming than they compress.
  chunk_bytes = std::max(chunk_bytes, 2 * kWindow);
  // zlib's counters are 32-bit (uInt): chunks stay well below that.
  chunk_bytes = std::min<std::size_t>(chunk_bytes, std::size_t(1) << 30);
  const std::size_t chunks = std::max<std::size_t>(1, (size + chunk_bytes - 1) / chunk_bytes);
  std::vector<DeflatedChunk> deflated(chunks);
  parallel_for(static_cast<std::int64_t>(chunks), 1, [&](std::int64_t first, std::int64_t stop) {
    for (std::int64_t i = first; i < stop; ++i) {
      const std::size_t begin = static_cast<std::size_t>(i) * chunk_bytes;
      const std::size_t end = std::min(size, begin + chunk_bytes);
      deflated[i] = deflate_chunk(data, begin, end, static_cast<std::size_t>(i) + 1 == chunks, level);
    }
  });
  std::size_t total = 18;  // header and trailer
  for (const DeflatedChunk& chunk : deflated) total += chunk.bytes.size();
  std::vector<std::uint8_t> out;
  out.reserve(total);
  // RFC 1952 header: magic, deflate, no flags, no modification time, the extra flags that
  // gzip(1) sets for its fastest and best levels, Unix.
  const std::uint8_t extra_flags = level == 9 ? 2 : (level == 1 ? 4 : 0);
  out.insert(out.end(), {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, extra_flags, 3});
  uLong crc = crc32(0L, Z_NULL, 0);
  for (const DeflatedChunk& chunk : deflated) {
    out.insert(out.end(), chunk.bytes.begin(), chunk.bytes.end());
    crc = crc32_combine(crc, chunk.crc, static_cast<z_off_t>(chunk.input_size));
  }
  put_le32(out, static_cast<std::uint32_t>(crc));
  put_le32(out, static_cast<std::uint32_t>(size & 0xffffffffu));  // ISIZE: the size modulo 2^32
  return out;
}

void gzip_file_in_parallel(const std::string& from, const std::string& to, int level) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> in(std::fopen(from.c_str(), "rb"), std::fclose);
  if (!in) throw Error(from, std::string("cannot open: ") + std::strerror(errno));
  std::error_code error;
  const std::uintmax_t size = std::filesystem::file_size(from, error);
  if (error) throw Error(from, "cannot read its size: " + error.message());
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  if (std::fread(bytes.data(), 1, bytes.size(), in.get()) != bytes.size()) throw Error(from, "cannot read");
  const std::vector<std::uint8_t> compressed = gzip_in_parallel(bytes.data(), bytes.size(), level);
  std::FILE* out = std::fopen(to.c_str(), "wb");
  if (!out) throw Error(to, std::string("cannot create: ") + std::strerror(errno));
  const bool written = std::fwrite(compressed.data(), 1, compressed.size(), out) == compressed.size();
  const bool closed = std::fclose(out) == 0;
  if (!written || !closed) throw Error(to, std::string("cannot write: ") + std::strerror(errno));
}

}  // namespace voxmamba::io
