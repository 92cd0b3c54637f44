// gzip in parallel chunks: every size around the chunk boundaries decompresses to its input
// through zlib (which checks the CRC and length in the trailer) and through GNU gzip, an
// independent decoder; the chunks' dictionaries keep matches across the cuts, so the file is
// about as small as one zlib stream makes it.
#include "io/parallel_gzip.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <random>

#include "core/error.h"
#include "tests/file_helpers.h"

namespace voxmamba::io {
namespace {

using namespace voxmamba::testing;

constexpr std::size_t kChunk = 65536;  // the smallest chunk gzip_in_parallel takes

// Text-like runs (compressible) broken by random bytes, so that every chunk holds both.
std::vector<std::uint8_t> mixed_bytes(std::size_t size, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<std::uint8_t> bytes(size);
  const std::string text = "label 3 left kidney, 1.5 mm isotropic; ";
  for (std::size_t i = 0; i < size; ++i) {
    bytes[i] = (i / 1000) % 3 == 0 ? static_cast<std::uint8_t>(rng())
                                   : static_cast<std::uint8_t>(text[i % text.size()]);
  }
  return bytes;
}

// One gzip member decoded by zlib, which fails on a bad CRC or length in the trailer; it
// must end exactly at the end of the bytes.
std::vector<std::uint8_t> gunzip(const std::vector<std::uint8_t>& gz) {
  z_stream stream{};
  EXPECT_EQ(inflateInit2(&stream, 16 + 15), Z_OK);
  std::vector<std::uint8_t> out(1 << 16);
  stream.next_in = const_cast<Bytef*>(gz.data());
  stream.avail_in = static_cast<uInt>(gz.size());
  int status = Z_OK;
  std::size_t written = 0;
  while (status == Z_OK) {
    if (written == out.size()) out.resize(out.size() * 2);
    stream.next_out = out.data() + written;
    stream.avail_out = static_cast<uInt>(out.size() - written);
    status = inflate(&stream, Z_NO_FLUSH);
    written = out.size() - stream.avail_out;
  }
  EXPECT_EQ(status, Z_STREAM_END) << (stream.msg ? stream.msg : "");
  EXPECT_EQ(stream.avail_in, 0u) << "bytes left after the gzip member";
  inflateEnd(&stream);
  out.resize(written);
  return out;
}

TEST(ParallelGzip, EverySizeAroundTheChunksDecompressesToItsInput) {
  for (const std::size_t size :
       {std::size_t(0), std::size_t(1), std::size_t(100), kChunk - 1, kChunk, kChunk + 1, 3 * kChunk + 17}) {
    const std::vector<std::uint8_t> input = mixed_bytes(size, static_cast<unsigned>(size));
    const std::vector<std::uint8_t> gz = gzip_in_parallel(input.data(), input.size(), kGzipLevel, kChunk);
    ASSERT_GE(gz.size(), 18u);
    EXPECT_EQ(gz[0], 0x1f);
    EXPECT_EQ(gz[1], 0x8b);
    EXPECT_EQ(gunzip(gz), input) << size << " bytes";
  }
}

TEST(ParallelGzip, GnuGzipReadsItAsOneFile) {
  TempFolder folder("parallel_gzip");
  const std::vector<std::uint8_t> input = mixed_bytes(5 * kChunk + 333, 7);
  const std::string plain = folder.file("data.bin");
  write_bytes(plain, std::string(input.begin(), input.end()));
  gzip_file_in_parallel(plain, folder.file("data.bin.gz"), 9);
  ASSERT_EQ(run_shell("gzip -t '" + folder.file("data.bin.gz") + "'"), 0);
  ASSERT_EQ(run_shell("gzip -dc '" + folder.file("data.bin.gz") + "' > '" + folder.file("back.bin") + "'"),
            0);
  EXPECT_EQ(read_bytes(folder.path() / "back.bin"), std::string(input.begin(), input.end()));
  EXPECT_EQ(read_bytes(folder.path() / "data.bin"), std::string(input.begin(), input.end()))
      << "the input stays";
}

TEST(ParallelGzip, MatchesReachAcrossTheCutsAsInOneStream) {
  // A random 10,000-byte block repeated: one zlib stream stores it once and then copies it,
  // and so must every chunk, from the window it is primed with. Unprimed, each of the 32
  // chunks would store the block again, about 320 KB more.
  std::mt19937 rng(3);
  std::vector<std::uint8_t> block(10000);
  for (std::uint8_t& b : block) b = static_cast<std::uint8_t>(rng());
  std::vector<std::uint8_t> input;
  while (input.size() < 32 * kChunk) input.insert(input.end(), block.begin(), block.end());
  input.resize(32 * kChunk);
  uLongf serial_size = compressBound(static_cast<uLong>(input.size()));
  std::vector<std::uint8_t> serial(serial_size);
  ASSERT_EQ(
      compress2(serial.data(), &serial_size, input.data(), static_cast<uLong>(input.size()), kGzipLevel),
      Z_OK);
  const std::vector<std::uint8_t> gz = gzip_in_parallel(input.data(), input.size(), kGzipLevel, kChunk);
  EXPECT_EQ(gunzip(gz), input);
  EXPECT_LT(gz.size(), serial_size + 32 * 200) << "one zlib stream: " << serial_size << " bytes";
}

TEST(ParallelGzip, RefusesLevelsZlibDoesNotHaveAndMissingFiles) {
  const std::uint8_t byte = 1;
  EXPECT_THROW(gzip_in_parallel(&byte, 1, 0), Error);
  EXPECT_THROW(gzip_in_parallel(&byte, 1, 10), Error);
  TempFolder folder("parallel_gzip_errors");
  try {
    gzip_file_in_parallel(folder.file("missing.nii"), folder.file("missing.nii.gz"));
    FAIL() << "no error for a missing file";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("missing.nii: cannot open"), std::string::npos) << error.what();
  }
  EXPECT_FALSE(fs::exists(folder.file("missing.nii.gz")));
}

}  // namespace
}  // namespace voxmamba::io
