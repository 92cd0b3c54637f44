#include "io/image.h"

#include <itkGDCMImageIO.h>
#include <itkGDCMImageIOFactory.h>
#include <itkGDCMSeriesFileNames.h>
#include <itkImage.h>
#include <itkImageFileReader.h>
#include <itkImageFileWriter.h>
#include <itkImageIOFactory.h>
#include <itkImageSeriesReader.h>
#include <itkImageSeriesWriter.h>
#include <itkMetaDataObject.h>
#include <itkMetaImageIOFactory.h>
#include <itkNiftiImageIOFactory.h>
#include <itkNrrdImageIOFactory.h>
#include <itkNumericSeriesFileNames.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <future>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>

#include "io/atomic_file.h"
#include "io/nifti2_reader.h"
#include "io/nifti_header.h"
#include "io/parallel_gzip.h"

namespace voxmamba::io {
namespace {

using FloatImage = itk::Image<float, 3>;

// Explicit registration instead of ITK's CMake-generated factory lists, so that no ITK
// build setting leaks into the rest of the project.
void register_image_formats() {
  static std::once_flag once;
  std::call_once(once, [] {
    // ITK prints warnings (e.g. "No Series were found") to stderr; our errors say it in one line.
    itk::Object::GlobalWarningDisplayOff();
    itk::NiftiImageIOFactory::RegisterOneFactory();
    itk::NrrdImageIOFactory::RegisterOneFactory();
    itk::MetaImageIOFactory::RegisterOneFactory();
    itk::GDCMImageIOFactory::RegisterOneFactory();
  });
}

// ITK's messages span several lines with source locations; keep the description's first line.
std::string short_reason(const itk::ExceptionObject& error) {
  std::string text = error.GetDescription();
  text = text.substr(0, text.find('\n'));
  while (!text.empty() && (text.back() == ' ' || text.back() == '\r')) text.pop_back();
  return text.empty() ? "unreadable" : text;
}

bool is_folder(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
}

void require_exists(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) throw Error(path, "no such file or folder");
}

std::string pixel_type_name(const itk::ImageIOBase* io) {
  using C = itk::IOComponentEnum;
  switch (io->GetComponentType()) {
    case C::UCHAR: return "uint8";
    case C::CHAR: return "int8";
    case C::USHORT: return "uint16";
    case C::SHORT: return "int16";
    case C::UINT: return "uint32";
    case C::INT: return "int32";
    case C::ULONG: case C::ULONGLONG: return "uint64";
    case C::LONG: case C::LONGLONG: return "int64";
    case C::FLOAT: return "float32";
    case C::DOUBLE: return "float64";
    default: return "unknown";
  }
}

Geometry geometry_of(const FloatImage* image) {
  Geometry g;
  const auto size = image->GetLargestPossibleRegion().GetSize();
  for (int a = 0; a < 3; ++a) {
    g.size[a] = static_cast<std::int64_t>(size[a]);
    g.spacing[a] = image->GetSpacing()[a];
    g.origin[a] = image->GetOrigin()[a];
    // "+ 0.0" turns ITK's -0.0 entries into 0.0, which prints as users expect.
    for (int b = 0; b < 3; ++b) g.direction[a * 3 + b] = image->GetDirection()(a, b) + 0.0;
  }
  return g;
}

template <typename Image> typename Image::Pointer make_image(const Geometry& g) {
  auto image = Image::New();
  typename Image::SizeType size;
  typename Image::SpacingType spacing;
  typename Image::PointType origin;
  typename Image::DirectionType direction;
  for (int a = 0; a < 3; ++a) {
    size[a] = static_cast<itk::SizeValueType>(g.size[a]);
    spacing[a] = g.spacing[a];
    origin[a] = g.origin[a];
    for (int b = 0; b < 3; ++b) direction(a, b) = g.direction[a * 3 + b];
  }
  image->SetRegions(typename Image::RegionType(size));
  image->SetSpacing(spacing);
  image->SetOrigin(origin);
  image->SetDirection(direction);
  image->Allocate();
  return image;
}

Volume volume_from(const FloatImage* image, std::string pixel_type) {
  Volume volume;
  volume.geometry = geometry_of(image);
  const auto& s = volume.geometry.size;
  volume.voxels = Tensor::empty({s[2], s[1], s[0], 1});
  std::copy(image->GetBufferPointer(), image->GetBufferPointer() + volume.voxels.numel(),
            volume.voxels.data<float>());
  volume.pixel_type = std::move(pixel_type);
  return volume;
}

// NIfTI facts ITK 5.2 gets wrong or does not check (see io/nifti_header.h). Returns the
// header of a NIfTI-1 file, nothing for other formats; throws for truncation and NaN voxels.
std::optional<NiftiHeader> check_nifti(const std::string& path) {
  if (!has_nifti_ending(path)) return std::nullopt;
  NiftiHeader header;
  try {
    header = read_nifti_header(path);
  } catch (const Error&) {
    return std::nullopt;  // not NIfTI at all: ITK's own check reports it
  }
  if (header.version == 2) return header;  // read_file hands it to read_nifti2
  if (header.file_bytes < header.data_bytes) {
    throw Error(path, "truncated or corrupt file: the header needs " + std::to_string(header.data_bytes) +
                          " bytes, the file holds " + (header.file_bytes < 0 ? std::string("a broken stream") : std::to_string(header.file_bytes)));
  }
  if (header.non_finite_voxels > 0) {
    throw Error(path, "holds " + std::to_string(header.non_finite_voxels) + " NaN or infinite voxel values");
  }
  return header;
}

// The NIfTI standard's precedence (and nibabel's): the sform, when its code is set.
void apply_sform(const NiftiHeader& header, Geometry& g) {
  double ras[3][4];
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 4; ++c) ras[r][c] = header.srow[r][c];
  Geometry sform = g;
  if (lps_geometry_from_ras_affine(ras, sform.spacing, sform.direction, sform.origin)) g = sform;
  // A degenerate sform keeps what ITK derived from the qform.
}

Volume read_with_itk(const std::string& path) {
  itk::ImageIOBase::Pointer io =
      itk::ImageIOFactory::CreateImageIO(path.c_str(), itk::ImageIOFactory::IOFileModeEnum::ReadMode);
  if (!io) throw Error(path, "not a readable image (unknown format, or a corrupt file)");
  try {
    io->SetFileName(path);
    io->ReadImageInformation();
  } catch (const itk::ExceptionObject& error) {
    throw Error(path, "cannot read the image header: " + short_reason(error));
  }
  const unsigned dimensions = io->GetNumberOfDimensions();
  for (unsigned d = 3; d < dimensions; ++d) {
    if (io->GetDimensions(d) > 1) {
      throw Error(path, "is a " + std::to_string(dimensions) + "D image with " + std::to_string(io->GetDimensions(d)) +
                            " volumes; VoxMamba reads 3D images (one file per channel)");
    }
  }
  if (dimensions < 2) throw Error(path, "is not a 3D image");
  if (io->GetNumberOfComponents() != 1) {
    throw Error(path, "has " + std::to_string(io->GetNumberOfComponents()) +
                          " components per voxel (RGB or vector image); expected a scalar image");
  }
  auto reader = itk::ImageFileReader<FloatImage>::New();
  reader->SetFileName(path);
  reader->SetImageIO(io);
  try {
    reader->Update();
  } catch (const itk::ExceptionObject& error) {
    throw Error(path, "cannot read the voxels (truncated or corrupt file): " + short_reason(error));
  }
  return volume_from(reader->GetOutput(), pixel_type_name(io));
}

Volume read_file(const std::string& path) {
  const int version = has_nifti_ending(path) ? nifti_version(path) : 0;
  // ITK 5.2 reads NIfTI-1 only; read_nifti2 makes its own checks as it reads.
  if (version == 2) return read_nifti2(path);
  // NIfTI-1's checks decompress the whole file, and so does ITK's read after them: side by
  // side, a 512 x 512 x 300 int16 CT as .nii.gz reads in 0.58-0.64 s rather than 0.89-0.95
  // (0.32 for the checks; the development machine's 2 cores). Their errors come first, as
  // they name what ITK reads past (a truncated file) or would hand on (NaN voxels).
  std::future<std::optional<NiftiHeader>> checked;
  if (version == 1) checked = std::async(std::launch::async, [path] { return check_nifti(path); });
  std::optional<Volume> volume;
  std::exception_ptr itk_failure;
  try {
    volume = read_with_itk(path);
  } catch (...) {
    itk_failure = std::current_exception();
  }
  const std::optional<NiftiHeader> nifti = checked.valid() ? checked.get() : std::nullopt;
  if (itk_failure) std::rethrow_exception(itk_failure);
  if (nifti && nifti->sform_code > 0) apply_sform(*nifti, volume->geometry);
  return std::move(*volume);
}

const DicomSeries& choose_series(const std::string& folder, const std::vector<DicomSeries>& series,
                                 const std::string& uid) {
  if (series.empty()) throw Error(folder, "no DICOM series found in this folder");
  if (!uid.empty()) {
    for (const DicomSeries& s : series) {
      if (s.uid == uid) return s;
    }
    throw Error(folder, "has no DICOM series with UID " + uid);
  }
  if (series.size() > 1) {
    std::string listing;
    for (const DicomSeries& s : series) listing += " " + s.uid + " (" + std::to_string(s.slices) + " slices)";
    throw Error(folder, "holds " + std::to_string(series.size()) + " DICOM series; choose one with --series UID:" +
                            listing);
  }
  return series.front();
}

Volume read_dicom(const std::string& folder, const std::string& uid) {
  const std::vector<DicomSeries> series = list_dicom_series(folder);
  const DicomSeries& chosen = choose_series(folder, series, uid);
  auto io = itk::GDCMImageIO::New();
  auto reader = itk::ImageSeriesReader<FloatImage>::New();
  reader->SetImageIO(io);
  reader->SetFileNames(chosen.files);
  try {
    reader->Update();  // GDCMImageIO applies rescale slope and intercept for a float output
  } catch (const itk::ExceptionObject& error) {
    throw Error(folder, "cannot read DICOM series " + chosen.uid + ": " + short_reason(error));
  }
  return volume_from(reader->GetOutput(), pixel_type_name(io));
}

template <typename Pixel, typename Source>
void write_image(const std::string& path, const Source* values, const Geometry& geometry) {
  using Image = itk::Image<Pixel, 3>;
  auto image = make_image<Image>(geometry);
  const std::int64_t count = geometry.size[0] * geometry.size[1] * geometry.size[2];
  std::transform(values, values + count, image->GetBufferPointer(), [](Source v) { return static_cast<Pixel>(v); });
  const auto write_with_itk = [&](const std::string& file, bool compressed) {
    auto writer = itk::ImageFileWriter<Image>::New();
    writer->SetFileName(file);
    writer->SetInput(image);
    writer->SetUseCompression(compressed);
    try {
      writer->Update();
    } catch (const itk::ExceptionObject& error) {
      throw Error(path, "cannot write the image: " + short_reason(error));
    }
  };
  write_atomically(path, [&](const std::string& temporary) {
    if (!has_gzipped_nifti_ending(temporary)) return write_with_itk(temporary, true);
    // ITK writes .nii.gz through one zlib stream on one thread (0.29 s of a 256^3 `segment`
    // on the GPU machine); it writes the plain .nii and the thread pool compresses that at
    // the same level: the same bytes once decompressed.
    const std::string plain = temporary.substr(0, temporary.size() - 3);
    try {
      write_with_itk(plain, false);
      gzip_file_in_parallel(plain, temporary);
    } catch (...) {
      std::remove(plain.c_str());
      throw;
    }
    std::remove(plain.c_str());
  });
}

void check_voxels_match(const std::string& path, const Tensor& voxels, const Geometry& geometry) {
  const std::int64_t count = geometry.size[0] * geometry.size[1] * geometry.size[2];
  if (voxels.numel() != count) {
    throw Error(path, "voxel count " + std::to_string(voxels.numel()) + " does not match the geometry's size");
  }
}

// A DICOM UID under the "2.25" root (DICOM PS3.5 B.2: a decimal integer below 2^128), here
// from 123 random bits: a non-zero 64-bit number followed by 18 random decimal digits.
std::string random_uid(std::mt19937_64& rng) {
  std::string low = std::to_string(rng() % 1000000000000000000ull);
  low.insert(0, 18 - low.size(), '0');
  return "2.25." + std::to_string(rng() | 1ull) + low;
}

std::string backslash_joined(const double* values, int count) {
  std::ostringstream text;
  text.precision(10);
  for (int i = 0; i < count; ++i) text << (i ? "\\" : "") << values[i];
  return text.str();
}

}  // namespace

std::vector<DicomSeries> list_dicom_series(const std::string& folder) {
  register_image_formats();
  require_exists(folder);
  std::vector<DicomSeries> result;
  try {
    auto names = itk::GDCMSeriesFileNames::New();
    names->SetUseSeriesDetails(true);
    names->SetDirectory(folder);
    for (const std::string& uid : names->GetSeriesUIDs()) {
      DicomSeries series;
      series.uid = uid;
      series.files = names->GetFileNames(uid);
      series.slices = static_cast<std::int64_t>(series.files.size());
      auto io = itk::GDCMImageIO::New();
      io->SetFileName(series.files.front());
      io->ReadImageInformation();
      itk::ExposeMetaData<std::string>(io->GetMetaDataDictionary(), "0008|103e", series.description);
      while (!series.description.empty() && series.description.back() == ' ') series.description.pop_back();
      series.size = {static_cast<std::int64_t>(io->GetDimensions(0)), static_cast<std::int64_t>(io->GetDimensions(1)),
                     series.slices};
      result.push_back(std::move(series));
    }
  } catch (const itk::ExceptionObject& error) {
    throw Error(folder, "cannot list DICOM series: " + short_reason(error));
  }
  std::sort(result.begin(), result.end(), [](const DicomSeries& a, const DicomSeries& b) { return a.slices > b.slices; });
  return result;
}

Volume read_image(const std::string& path, const std::string& series_uid) {
  register_image_formats();
  require_exists(path);
  return is_folder(path) ? read_dicom(path, series_uid) : read_file(path);
}

ImageInfo describe_image(const std::string& path) {
  ImageInfo info;
  std::string uid;
  if (is_folder(path)) {
    info.series = list_dicom_series(path);
    if (!info.series.empty()) uid = info.series.front().uid;  // describe the largest series
  }
  const Volume volume = read_image(path, uid);
  info.geometry = volume.geometry;
  info.pixel_type = volume.pixel_type;
  const float* v = volume.voxels.data<float>();
  const auto range = std::minmax_element(v, v + volume.voxels.numel());
  info.min = volume.voxels.numel() ? *range.first : 0.0;
  info.max = volume.voxels.numel() ? *range.second : 0.0;
  return info;
}

void write_labels(const std::string& path, const Tensor& labels, const Geometry& geometry, LabelType type) {
  check_voxels_match(path, labels, geometry);
  register_image_formats();
  if (labels.dtype() != DType::i32) throw Error(path, "label maps are written from int32 labels");
  const std::int32_t* values = labels.data<std::int32_t>();
  if (type == LabelType::UInt8) {
    write_image<std::uint8_t>(path, values, geometry);
  } else {
    write_image<std::int16_t>(path, values, geometry);
  }
}

void write_dicom_series(const std::string& folder, const Tensor& voxels, const Geometry& geometry,
                        const std::string& modality) {
  check_voxels_match(folder, voxels, geometry);
  register_image_formats();
  std::error_code error;
  std::filesystem::create_directories(folder, error);
  if (error) throw Error(folder, "cannot create the folder: " + error.message());
  using Image = itk::Image<std::int16_t, 3>;
  using Slice = itk::Image<std::int16_t, 2>;
  auto image = make_image<Image>(geometry);
  std::transform(voxels.data<float>(), voxels.data<float>() + voxels.numel(), image->GetBufferPointer(),
                 [](float v) { return static_cast<std::int16_t>(std::lround(std::clamp(v, -32768.0f, 32767.0f))); });
  std::mt19937_64 rng(std::random_device{}());
  const std::string study = random_uid(rng), series = random_uid(rng), frame = random_uid(rng);
  const double orientation[6] = {geometry.direction[0], geometry.direction[3], geometry.direction[6],
                                 geometry.direction[1], geometry.direction[4], geometry.direction[7]};
  // One dictionary per slice: shared identifiers, and the slice's own position.
  std::vector<itk::MetaDataDictionary> dictionaries(static_cast<std::size_t>(geometry.size[2]));
  std::vector<itk::MetaDataDictionary*> pointers;
  for (std::int64_t k = 0; k < geometry.size[2]; ++k) {
    itk::MetaDataDictionary& d = dictionaries[static_cast<std::size_t>(k)];
    double position[3];
    for (int r = 0; r < 3; ++r) position[r] = geometry.origin[r] + k * geometry.spacing[2] * geometry.direction[r * 3 + 2];
    itk::EncapsulateMetaData<std::string>(d, "0008|0060", modality);
    itk::EncapsulateMetaData<std::string>(d, "0028|0004", "MONOCHROME2");
    itk::EncapsulateMetaData<std::string>(d, "0020|000d", study);
    itk::EncapsulateMetaData<std::string>(d, "0020|000e", series);
    itk::EncapsulateMetaData<std::string>(d, "0020|0052", frame);
    itk::EncapsulateMetaData<std::string>(d, "0008|0018", random_uid(rng));
    itk::EncapsulateMetaData<std::string>(d, "0020|0013", std::to_string(k + 1));
    itk::EncapsulateMetaData<std::string>(d, "0020|0032", backslash_joined(position, 3));
    itk::EncapsulateMetaData<std::string>(d, "0020|0037", backslash_joined(orientation, 6));
    itk::EncapsulateMetaData<std::string>(d, "0018|0050", std::to_string(geometry.spacing[2]));
    const double pixel_spacing[2] = {geometry.spacing[1], geometry.spacing[0]};  // rows, columns
    itk::EncapsulateMetaData<std::string>(d, "0028|0030", backslash_joined(pixel_spacing, 2));
    itk::EncapsulateMetaData<std::string>(d, "0008|103e", "VoxMamba export");
    pointers.push_back(&d);
  }
  auto names = itk::NumericSeriesFileNames::New();
  names->SetSeriesFormat(folder + "/slice_%04d.dcm");
  names->SetStartIndex(1);
  names->SetEndIndex(static_cast<itk::SizeValueType>(geometry.size[2]));
  names->SetIncrementIndex(1);
  auto io = itk::GDCMImageIO::New();
  io->KeepOriginalUIDOn();  // our identifiers above, not fresh ones per slice
  auto writer = itk::ImageSeriesWriter<Image, Slice>::New();
  writer->SetInput(image);
  writer->SetImageIO(io);
  writer->SetFileNames(names->GetFileNames());
  writer->SetMetaDataDictionaryArray(&pointers);
  try {
    writer->Update();
  } catch (const itk::ExceptionObject& failure) {
    throw Error(folder, "cannot write the DICOM series: " + short_reason(failure));
  }
}

void write_float_image(const std::string& path, const Tensor& voxels, const Geometry& geometry) {
  check_voxels_match(path, voxels, geometry);
  register_image_formats();
  write_image<float>(path, voxels.data<float>(), geometry);
}

}  // namespace voxmamba::io
