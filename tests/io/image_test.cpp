// Medical image IO through ITK: round trips that keep voxels and geometry (oblique directions,
// anisotropic spacing) in every format, real files written by other tools checked against
// independent readers (nibabel, pydicom), and one clear error per kind of bad input.
#include "io/image.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "tests/file_helpers.h"
#include "tests/test_util.h"

namespace voxmamba::io {
namespace {

using namespace voxmamba::testing;

const std::string kData = std::string(VOXMAMBA_SOURCE_DIR) + "/.testdata/root";
const std::string kNibabel = kData + "/usr/lib/python3/dist-packages/nibabel/tests/data/";
const std::string kPydicom = kData + "/usr/lib/python3/dist-packages/pydicom/data/test_files/";
const std::string kMricron = kData + "/usr/share/mricron/templates/";

#define REQUIRE_TEST_DATA()                                                                              \
  do {                                                                                                   \
    if (!fs::exists(kMricron + "ch2.nii.gz")) GTEST_SKIP() << "no test data: run scripts/fetch_test_data.sh"; \
  } while (false)

// A rotation about an oblique axis: the direction cosines of a tilted acquisition.
Geometry oblique_geometry(std::array<std::int64_t, 3> size) {
  Geometry g;
  g.size = size;
  g.spacing = {0.7, 1.3, 2.5};
  g.origin = {-12.5, 40.25, 7.0};
  const double a = 0.3, b = -0.2;  // rotations about z then x
  const double rz[9] = {std::cos(a), -std::sin(a), 0, std::sin(a), std::cos(a), 0, 0, 0, 1};
  const double rx[9] = {1, 0, 0, 0, std::cos(b), -std::sin(b), 0, std::sin(b), std::cos(b)};
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) {
      double sum = 0;
      for (int k = 0; k < 3; ++k) sum += rz[r * 3 + k] * rx[k * 3 + c];
      g.direction[r * 3 + c] = sum;
    }
  return g;
}

void expect_same_geometry(const Geometry& actual, const Geometry& expected, double tolerance) {
  EXPECT_EQ(actual.size, expected.size);
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(actual.spacing[i], expected.spacing[i], tolerance) << "spacing " << i;
    EXPECT_NEAR(actual.origin[i], expected.origin[i], tolerance) << "origin " << i;
  }
  for (int i = 0; i < 9; ++i) EXPECT_NEAR(actual.direction[i], expected.direction[i], tolerance) << "direction " << i;
}

class ImageRoundTrip : public ::testing::TestWithParam<std::string> {};

TEST_P(ImageRoundTrip, FloatVoxelsAndObliqueGeometrySurvive) {
  TempFolder folder("image_round_trip");
  const Geometry geometry = oblique_geometry({7, 5, 4});
  const Tensor voxels = random_tensor({4, 5, 7, 1}, 3, -1000, 3000);
  const std::string path = folder.file("image" + GetParam());
  write_float_image(path, voxels, geometry);
  const Volume back = read_image(path);
  EXPECT_EQ(back.pixel_type, "float32");
  expect_same_geometry(back.geometry, geometry, 1e-5);
  ASSERT_EQ(back.voxels.shape(), voxels.shape());
  for (std::int64_t i = 0; i < voxels.numel(); ++i) ASSERT_EQ(back.voxels.data<float>()[i], voxels.data<float>()[i]);
}

TEST_P(ImageRoundTrip, LabelMapsKeepTheirTypeAndValues) {
  TempFolder folder("label_round_trip");
  const Geometry geometry = oblique_geometry({6, 3, 5});
  Tensor labels = Tensor::empty({5, 3, 6}, DType::i32);
  for (std::int64_t i = 0; i < labels.numel(); ++i) labels.data<std::int32_t>()[i] = static_cast<std::int32_t>(i % 7);
  for (const auto& [type, name] : {std::pair{LabelType::UInt8, "uint8"}, std::pair{LabelType::Int16, "int16"}}) {
    const std::string path = folder.file(std::string("labels_") + name + GetParam());
    write_labels(path, labels, geometry, type);
    const Volume back = read_image(path);
    EXPECT_EQ(back.pixel_type, name);
    expect_same_geometry(back.geometry, geometry, 1e-5);
    for (std::int64_t i = 0; i < labels.numel(); ++i) {
      ASSERT_EQ(back.voxels.data<float>()[i], static_cast<float>(labels.data<std::int32_t>()[i]));
    }
    EXPECT_FALSE(fs::exists(folder.file(".partial-" + std::to_string(::getpid()) + "-labels_" + name + GetParam())));
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, ImageRoundTrip, ::testing::Values(".nii.gz", ".nii", ".nrrd", ".mha"),
                         [](const ::testing::TestParamInfo<std::string>& param_info) {
                           std::string name = param_info.param.substr(1);
                           for (char& c : name) c = c == '.' ? '_' : c;
                           return name;
                         });

// A .nii.gz is ITK's plain .nii of the same image, compressed by the thread pool in chunks
// (io/parallel_gzip.h): GNU gzip decompresses it to exactly those bytes. 1 MiB of voxels makes
// several chunks; no temporary is left beside the two files.
TEST(GzippedNifti, DecompressesToThePlainNiftiOfTheSameImage) {
  TempFolder folder("gzipped_nifti");
  const Geometry geometry = oblique_geometry({64, 64, 64});
  const Tensor voxels = random_tensor({64, 64, 64, 1}, 5, -1000, 3000);
  write_float_image(folder.file("image.nii"), voxels, geometry);
  write_float_image(folder.file("image.nii.gz"), voxels, geometry);
  ASSERT_EQ(run_shell("gzip -dc '" + folder.file("image.nii.gz") + "' > '" + folder.file("unzipped") + "'"),
            0);
  const std::string plain = read_bytes(folder.path() / "image.nii");
  EXPECT_GT(plain.size(), std::size_t(64 * 64 * 64 * 4));
  EXPECT_TRUE(read_bytes(folder.path() / "unzipped") == plain)
      << "the decompressed file differs from the .nii";
  fs::remove(folder.path() / "unzipped");
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(folder.path()))
    names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"image.nii", "image.nii.gz"}));
}

// Geometry of `files` by an independent reader: nibabel's affine (RAS) turned into ITK's
// LPS size/spacing/origin/direction, or pydicom's tags for DICOM files.
nlohmann::json independent_geometry(const TempFolder& folder, const std::vector<std::string>& files) {
  std::string list;
  for (const std::string& f : files) list += "'" + f + "',";
  const std::string script =
      "import json, numpy as np\n"
      "out = {}\n"
      "for f in [" + list + "]:\n"
      "    if f.endswith('.dcm'):\n"
      "        import pydicom\n"
      "        d = pydicom.dcmread(f)\n"
      "        iop = np.array(d.ImageOrientationPatient, float)\n"
      "        direction = np.stack([iop[:3], iop[3:], np.cross(iop[:3], iop[3:])], axis=1)\n"
      "        out[f] = dict(size=[int(d.Columns), int(d.Rows), 1], spacing=[float(d.PixelSpacing[1]), float(d.PixelSpacing[0])],\n"
      "                      origin=[float(v) for v in d.ImagePositionPatient], direction=direction.ravel().tolist())\n"
      "    else:\n"
      "        import nibabel as nib\n"
      "        img = nib.load(f)\n"
      "        a = img.affine; zooms = np.array(img.header.get_zooms()[:3], float)\n"
      "        flip = np.diag([-1.0, -1.0, 1.0])\n"
      "        out[f] = dict(size=[int(s) for s in img.shape[:3]], spacing=zooms.tolist(),\n"
      "                      origin=(flip @ a[:3, 3]).tolist(), direction=(flip @ (a[:3, :3] / zooms)).ravel().tolist())\n"
      "json.dump(out, open('geometry.json', 'w'))\n";
  if (run_python(folder.path(), script) != 0) return nullptr;
  return nlohmann::json::parse(read_bytes(folder.path() / "geometry.json"));
}

TEST(RealImages, GeometryMatchesNibabelAndPydicom) {
  REQUIRE_TEST_DATA();
  if (!python_has("nibabel") || !python_has("pydicom")) GTEST_SKIP() << "python3-nibabel or python3-pydicom missing";
  TempFolder folder("real_images");
  const std::vector<std::string> files = {
      kMricron + "ch2.nii.gz", kMricron + "ch2better.nii.gz", kMricron + "JHU-WhiteMatter-labels-1mm.nii.gz",
      kNibabel + "anatomical.nii", kNibabel + "reoriented_anat_moved.nii", kPydicom + "CT_small.dcm",
      kPydicom + "MR_small.dcm", kPydicom + "MR_small_bigendian.dcm", kPydicom + "MR_small_implicit.dcm",
      kPydicom + "MR_small_RLE.dcm"};
  const nlohmann::json expected = independent_geometry(folder, files);
  ASSERT_FALSE(expected.is_null()) << read_bytes(folder.path() / "python.log");
  for (const std::string& file : files) {
    SCOPED_TRACE(file);
    const ImageInfo info = describe_image(file);
    const nlohmann::json& e = expected.at(file);
    for (int a = 0; a < 3; ++a) {
      EXPECT_EQ(info.geometry.size[a], e["size"][a].get<std::int64_t>());
      if (a < static_cast<int>(e["spacing"].size())) {
        EXPECT_NEAR(info.geometry.spacing[a], e["spacing"][a].get<double>(), 1e-4);
      }
      EXPECT_NEAR(info.geometry.origin[a], e["origin"][a].get<double>(), 1e-4);
    }
    for (int i = 0; i < 9; ++i) EXPECT_NEAR(info.geometry.direction[i], e["direction"][i].get<double>(), 1e-4);
  }
}

TEST(RealImages, Colin27IsTheExpectedVolume) {
  REQUIRE_TEST_DATA();
  const Volume colin = read_image(kMricron + "ch2.nii.gz");
  EXPECT_EQ(colin.geometry.size, (std::array<std::int64_t, 3>{181, 217, 181}));
  EXPECT_EQ(colin.voxels.shape(), (Shape{181, 217, 181, 1}));
  EXPECT_EQ(colin.pixel_type, "uint8");
}

TEST(RealImages, DicomRescaleIsApplied) {
  REQUIRE_TEST_DATA();
  // CT_small.dcm stores RescaleIntercept -1024: air must come out near -1000 HU, not near 0.
  const ImageInfo info = describe_image(kPydicom + "CT_small.dcm");
  EXPECT_LT(info.min, -500);
}

TEST(RealImages, Colin27AsADicomSeriesReadsBackWithItsGeometry) {
  REQUIRE_TEST_DATA();
  TempFolder folder("colin_dicom");
  Volume colin = read_image(kMricron + "ch2.nii.gz");
  colin.geometry = oblique_geometry(colin.geometry.size);  // tilted and anisotropic on purpose
  write_dicom_series(folder.file("series"), colin.voxels, colin.geometry);
  const std::vector<DicomSeries> series = list_dicom_series(folder.file("series"));
  ASSERT_EQ(series.size(), 1u);
  EXPECT_EQ(series[0].slices, 181);
  const Volume back = read_image(folder.file("series"));
  expect_same_geometry(back.geometry, colin.geometry, 1e-4);
  for (std::int64_t i = 0; i < colin.voxels.numel(); ++i) ASSERT_EQ(back.voxels.data<float>()[i], colin.voxels.data<float>()[i]);
}

void expect_error(const std::string& path, const std::string& word, const std::string& uid = "") {
  try {
    read_image(path, uid);
    FAIL() << "read " << path;
  } catch (const Error& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find(path), std::string::npos) << message;
    EXPECT_NE(message.find(word), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

TEST(ImageErrors, OneClearLineForEachBadInput) {
  TempFolder folder("image_errors");
  expect_error(folder.file("missing.nii.gz"), "no such file");
  write_bytes(folder.path() / "text.nii.gz", "this is not an image\n");
  expect_error(folder.file("text.nii.gz"), "not a readable image");
  fs::create_directory(folder.path() / "empty");
  expect_error(folder.file("empty"), "no DICOM series");
  // A truncated .nii.gz: a valid file cut in half.
  write_float_image(folder.file("whole.nii.gz"), random_tensor({16, 16, 16, 1}, 1), oblique_geometry({16, 16, 16}));
  const std::string whole = read_bytes(folder.path() / "whole.nii.gz");
  write_bytes(folder.path() / "cut.nii.gz", whole.substr(0, whole.size() / 2));
  expect_error(folder.file("cut.nii.gz"), "truncated or corrupt");
  // NaN and infinite voxels, found by the check that runs beside ITK's read, in both NIfTI-1
  // forms (the plain file is read without zlib's stream).
  Tensor voxels = random_tensor({8, 8, 8, 1}, 2);
  voxels.data<float>()[17] = std::nanf("");
  voxels.data<float>()[300] = -INFINITY;
  for (const std::string name : {"nan.nii.gz", "nan.nii"}) {
    write_float_image(folder.file(name), voxels, oblique_geometry({8, 8, 8}));
    expect_error(folder.file(name), "holds 2 NaN or infinite voxel values");
  }
}

TEST(ImageErrors, DicomFolderWithTwoSeriesNeedsAChoice) {
  REQUIRE_TEST_DATA();
  TempFolder folder("two_series");
  fs::copy_file(kPydicom + "CT_small.dcm", folder.path() / "a.dcm");
  fs::copy_file(kPydicom + "MR_small.dcm", folder.path() / "b.dcm");
  const std::vector<DicomSeries> series = list_dicom_series(folder.path().string());
  ASSERT_EQ(series.size(), 2u);
  expect_error(folder.path().string(), "--series");
  const Volume chosen = read_image(folder.path().string(), series[1].uid);
  EXPECT_EQ(chosen.geometry.size[2], 1);
  expect_error(folder.path().string(), "no DICOM series with UID", "1.2.3.4");
}

TEST(ImageErrors, NiftiTwoIsNamedInTheError) {
  REQUIRE_TEST_DATA();
  // nibabel's example_nifti2.nii.gz is 4D (2 volumes): refused with a clear error.
  expect_error(kNibabel + "example_nifti2.nii.gz", "4D NIfTI-2 image with 2 volumes");
}

TEST(RealImages, NiftiTwoWrittenByNibabelReadsWithItsGeometry) {
  if (!python_has("nibabel")) GTEST_SKIP() << "python3-nibabel missing";
  TempFolder folder("nifti2");
  // Three files: sform (oblique), qform only (with qfac -1), and int16 with scaling.
  ASSERT_EQ(run_python(folder.path(),
                       "import nibabel as nib, numpy as np, json\n"
                       "rng = np.random.RandomState(0)\n"
                       "a = rng.rand(7, 5, 4).astype(np.float32)\n"
                       "c, s = np.cos(0.3), np.sin(0.3)\n"
                       "aff = np.array([[0.7*c, -1.3*s, 0, 12.5], [0.7*s, 1.3*c, 0, -40.25], [0, 0, 2.5, 7], [0, 0, 0, 1]])\n"
                       "img = nib.Nifti2Image(a, aff); img.set_qform(None, code=0); img.set_sform(aff, code=2)\n"
                       "nib.save(img, 'sform.nii.gz')\n"
                       "q = nib.Nifti2Image(a, None); q.set_qform(np.diag([-1.5, 2.0, -0.5, 1]) @ np.eye(4), code=1); q.set_sform(None, code=0)\n"
                       "nib.save(q, 'qform.nii')\n"
                       "i = nib.Nifti2Image(np.arange(140, dtype=np.int16).reshape(7, 5, 4), aff); i.header.set_slope_inter(0.5, 10)\n"
                       "nib.save(i, 'scaled.nii.gz')\n"
                       "out = {}\n"
                       "for f in ['sform.nii.gz', 'qform.nii', 'scaled.nii.gz']:\n"
                       "    m = nib.load(f); A = m.affine; z = np.array(m.header.get_zooms()[:3])\n"
                       "    flip = np.diag([-1.0, -1.0, 1.0])\n"
                       "    out[f] = dict(origin=(flip @ A[:3, 3]).tolist(), direction=(flip @ (A[:3, :3] / z)).ravel().tolist(),\n"
                       "                  spacing=z.tolist(), data=np.asarray(m.get_fdata(), np.float32).transpose(2, 1, 0).ravel().tolist())\n"
                       "json.dump(out, open('expected.json', 'w'))\n"),
            0)
      << read_bytes(folder.path() / "python.log");
  const nlohmann::json expected = nlohmann::json::parse(read_bytes(folder.path() / "expected.json"));
  for (const std::string name : {"sform.nii.gz", "qform.nii", "scaled.nii.gz"}) {
    SCOPED_TRACE(name);
    const Volume v = read_image(folder.file(name));
    const nlohmann::json& e = expected[name];
    EXPECT_EQ(v.geometry.size, (std::array<std::int64_t, 3>{7, 5, 4}));
    for (int a = 0; a < 3; ++a) {
      EXPECT_NEAR(v.geometry.spacing[a], e["spacing"][a].get<double>(), 1e-5);
      EXPECT_NEAR(v.geometry.origin[a], e["origin"][a].get<double>(), 1e-5);
    }
    for (int i = 0; i < 9; ++i) EXPECT_NEAR(v.geometry.direction[i], e["direction"][i].get<double>(), 1e-5);
    for (std::int64_t i = 0; i < v.voxels.numel(); ++i) ASSERT_NEAR(v.voxels.data<float>()[i], e["data"][i].get<float>(), 1e-5);
  }
}

TEST(ImageErrors, FourDimensionalImageIsRefusedClearly) {
  if (!python_has("nibabel")) GTEST_SKIP() << "python3-nibabel missing";
  TempFolder folder("four_d");
  ASSERT_EQ(run_python(folder.path(),
                       "import nibabel as nib, numpy as np\n"
                       "nib.save(nib.Nifti1Image(np.zeros((8, 8, 8, 3), np.float32), np.eye(4)), 'four.nii.gz')\n"),
            0);
  expect_error(folder.file("four.nii.gz"), "4D image with 3 volumes");
}

}  // namespace
}  // namespace voxmamba::io
