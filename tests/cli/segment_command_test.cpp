// voxmamba segment end to end: label maps in the input's exact geometry (oblique, anisotropic,
// real Colin27), statistics, folders of cases going on past a bad one, and one clear line for
// each bad input with nothing overwritten.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "io/image.h"
#include "io/npy.h"
#include "tests/cli_runner.h"
#include "tests/file_helpers.h"
#include "tests/test_util.h"

namespace voxmamba {
namespace {

using namespace voxmamba::testing;

io::Geometry oblique_anisotropic(std::array<std::int64_t, 3> size) {
  io::Geometry g;
  g.size = size;
  g.spacing = {0.8, 1.25, 2.0};
  g.origin = {10.5, -20.0, 33.25};
  const double c = std::cos(0.4), s = std::sin(0.4);
  g.direction = {c, 0, s, 0, 1, 0, -s, 0, c};
  return g;
}

void write_test_image(const std::string& path, const io::Geometry& g, std::uint64_t seed) {
  io::write_float_image(path, random_tensor({g.size[2], g.size[1], g.size[0], 1}, seed, 0.0f, 100.0f), g);
}

class SegmentCommandTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    suite_ = std::make_unique<TempFolder>("segment_suite");
    // A small model whose 32^3 patches keep each pass under a second on two cores.
    model_ok_ = run_cli(suite_->path(), {"init", "--config", "small", "--classes", "3", "--seed", "1",
                                         "--patch-size", "32", "32", "32", "-o", "m.h5"})
                    .status == 0;
  }
  static void TearDownTestSuite() { suite_.reset(); }
  void SetUp() override { ASSERT_TRUE(model_ok_); }

  static std::string model() { return suite_->file("m.h5"); }
  RunResult segment(const std::vector<std::string>& extra) {
    std::vector<std::string> args = {"segment", "-m", model(), "--quiet", "--no-tta", "--device", "cpu"};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_cli(folder_.path(), args);
  }
  std::string path(const std::string& name) const { return folder_.file(name); }

  static inline std::unique_ptr<TempFolder> suite_;
  static inline bool model_ok_ = false;
  TempFolder folder_{"segment_test"};
};

void expect_same_geometry(const io::Geometry& a, const io::Geometry& b) {
  EXPECT_EQ(a.size, b.size);
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(a.spacing[i], b.spacing[i], 1e-5);
    EXPECT_NEAR(a.origin[i], b.origin[i], 1e-5);
  }
  for (int i = 0; i < 9; ++i) EXPECT_NEAR(a.direction[i], b.direction[i], 1e-5);
}

TEST_F(SegmentCommandTest, LabelMapHasTheInputsObliqueAnisotropicGeometry) {
  const io::Geometry geometry = oblique_anisotropic({37, 29, 18});
  write_test_image(path("scan.nii.gz"), geometry, 1);
  const RunResult result = segment({"-i", path("scan.nii.gz"), "-o", path("seg.nii.gz"), "--stats", path("s.json")});
  ASSERT_EQ(result.status, 0) << result.output;
  const io::Volume labels = io::read_image(path("seg.nii.gz"));
  expect_same_geometry(labels.geometry, geometry);
  EXPECT_EQ(labels.pixel_type, "uint8");
  // The statistics count each label of the written map, and its volume at the input's spacing.
  std::int64_t counted[3] = {0, 0, 0};
  for (std::int64_t i = 0; i < labels.voxels.numel(); ++i) {
    const float label = labels.voxels.data<float>()[i];
    ASSERT_TRUE(label == 0.0f || label == 1.0f || label == 2.0f) << label;
    ++counted[static_cast<int>(label)];
  }
  const nlohmann::json stats = nlohmann::json::parse(read_bytes(path("s.json")));
  const nlohmann::json& by_label = stats["scan.nii.gz"]["labels"];
  ASSERT_EQ(by_label.size(), 3u) << by_label.dump();  // every class, also one with no voxels
  // At the spacing as the files hold it (NIfTI stores it in float32).
  const io::Geometry& stored = labels.geometry;
  const double voxel_ml = stored.spacing[0] * stored.spacing[1] * stored.spacing[2] / 1000.0;
  std::int64_t total = 0;
  for (int k = 0; k < 3; ++k) {
    const nlohmann::json& entry = by_label.at(std::to_string(k));
    EXPECT_EQ(entry["voxels"].get<std::int64_t>(), counted[k]) << "label " << k;
    EXPECT_NEAR(entry["volume_ml"].get<double>(), static_cast<double>(counted[k]) * voxel_ml, 1e-9)
        << "label " << k;
    total += entry["voxels"].get<std::int64_t>();
  }
  EXPECT_EQ(total, 37 * 29 * 18);
}

TEST_F(SegmentCommandTest, ProbabilitiesAndLargestComponent) {
  write_test_image(path("scan.nrrd"), oblique_anisotropic({21, 19, 17}), 6);
  const RunResult result = segment({"-i", path("scan.nrrd"), "-o", path("seg.nii.gz"), "--save-probabilities",
                                    "--largest-component"});
  ASSERT_EQ(result.status, 0) << result.output;
  const Tensor probabilities = io::read_npy(path("seg_probabilities.npy"));
  ASSERT_EQ(probabilities.shape(), (Shape{17, 19, 21, 3}));
  const io::Volume labels = io::read_image(path("seg.nii.gz"));
  for (std::int64_t v = 0; v < 17 * 19 * 21; ++v) {
    const float* p = probabilities.data<float>() + v * 3;
    ASSERT_NEAR(p[0] + p[1] + p[2], 1.0f, 1e-5);
    // Largest-component removal only turns voxels into background, never into another label.
    const int argmax = static_cast<int>(std::max_element(p, p + 3) - p);
    const float label = labels.voxels.data<float>()[v];
    ASSERT_TRUE(label == static_cast<float>(argmax) || label == 0.0f) << v;
  }
}

// Colin27 (181 x 217 x 181, 1 mm), as distributed, as a tilted anisotropic copy, and as a DICOM
// series written from it: each label map has its input's geometry. A model with 2 mm target
// spacing and 96^3 patches needs about one pass per input, which keeps this quick on two cores.
TEST_F(SegmentCommandTest, Colin27InAllThreeFormsKeepsItsGeometry) {
  const std::string colin = std::string(VOXMAMBA_SOURCE_DIR) + "/.testdata/root/usr/share/mricron/templates/ch2.nii.gz";
  if (!fs::exists(colin)) GTEST_SKIP() << "no test data: run scripts/fetch_test_data.sh";
  ASSERT_EQ(run_cli(folder_.path(), {"init", "--config", "small", "--classes", "3", "--seed", "2", "--patch-size", "96",
                                     "96", "96", "--spacing", "2", "2", "2", "-o", "m96.h5"})
                .status,
            0);
  io::Volume volume = io::read_image(colin);
  io::Geometry tilted = oblique_anisotropic(volume.geometry.size);
  io::write_float_image(path("colin_tilted.nii.gz"), volume.voxels, tilted);
  io::write_dicom_series(path("colin_dicom"), volume.voxels, volume.geometry);
  const std::vector<std::pair<std::string, io::Geometry>> inputs = {
      {colin, volume.geometry}, {path("colin_tilted.nii.gz"), tilted}, {path("colin_dicom"), volume.geometry}};
  int index = 0;
  for (const auto& [input, geometry] : inputs) {
    SCOPED_TRACE(input);
    const std::string output = path("seg" + std::to_string(index++) + ".nii.gz");
    const RunResult result = run_cli(folder_.path(), {"segment", "-m", path("m96.h5"), "--quiet", "--no-tta", "--overlap",
                                                      "0", "--device", "cpu", "-i", input, "-o", output});
    ASSERT_EQ(result.status, 0) << result.output;
    expect_same_geometry(io::read_image(output).geometry, geometry);
  }
}

// The same anatomy stored with the x axis reversed (and the direction and origin saying so)
// gives the same labels at the same patient positions: segment reorients to the model's
// canonical axes before the network and back after.
TEST_F(SegmentCommandTest, LabelsFollowTheAnatomyNotTheStorageOrder) {
  io::Geometry a;
  a.size = {20, 18, 16};
  a.spacing = {1.0, 1.0, 1.0};
  const Tensor voxels = random_tensor({16, 18, 20, 1}, 9, 0.0f, 100.0f);
  io::Geometry b = a;
  b.direction = {-1, 0, 0, 0, 1, 0, 0, 0, 1};
  b.origin = {19.0, 0.0, 0.0};  // voxel 0 of b is voxel 19 of a
  Tensor flipped = Tensor::empty(voxels.shape());
  for (std::int64_t z = 0; z < 16; ++z)
    for (std::int64_t y = 0; y < 18; ++y)
      for (std::int64_t x = 0; x < 20; ++x) {
        flipped.data<float>()[(z * 18 + y) * 20 + x] = voxels.data<float>()[(z * 18 + y) * 20 + (19 - x)];
      }
  io::write_float_image(path("a.nii.gz"), voxels, a);
  io::write_float_image(path("b.nii.gz"), flipped, b);
  ASSERT_EQ(segment({"-i", path("a.nii.gz"), "-o", path("la.nii.gz")}).status, 0);
  ASSERT_EQ(segment({"-i", path("b.nii.gz"), "-o", path("lb.nii.gz")}).status, 0);
  const io::Volume la = io::read_image(path("la.nii.gz")), lb = io::read_image(path("lb.nii.gz"));
  expect_same_geometry(lb.geometry, b);
  for (std::int64_t z = 0; z < 16; ++z)
    for (std::int64_t y = 0; y < 18; ++y)
      for (std::int64_t x = 0; x < 20; ++x) {
        ASSERT_EQ(lb.voxels.data<float>()[(z * 18 + y) * 20 + x], la.voxels.data<float>()[(z * 18 + y) * 20 + (19 - x)]);
      }
}

TEST_F(SegmentCommandTest, FolderOfCasesGoesOnPastACorruptCase) {
  fs::create_directory(path("cases"));
  fs::create_directory(path("out"));
  write_test_image(path("cases/a_0000.nii.gz"), oblique_anisotropic({20, 20, 20}), 2);
  write_bytes(path("cases/b_0000.nii.gz"), "corrupt\n");
  write_test_image(path("cases/c_0000.nrrd"), oblique_anisotropic({17, 19, 16}), 3);
  // Two channels for a one-channel model: read (ahead, while c runs), then refused in its turn.
  write_test_image(path("cases/d_0000.nii.gz"), oblique_anisotropic({16, 16, 16}), 5);
  write_test_image(path("cases/d_0001.nii.gz"), oblique_anisotropic({16, 16, 16}), 6);
  const RunResult result = segment({"-i", path("cases"), "-o", path("out")});
  EXPECT_NE(result.status, 0);
  EXPECT_NE(result.output.find("2 of 4 case(s) failed: b, d"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("b_0000.nii.gz"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("case 'd' has 2 channel file(s) but the model expects 1"), std::string::npos)
      << result.output;
  EXPECT_TRUE(fs::exists(path("out/a.nii.gz")));
  EXPECT_TRUE(fs::exists(path("out/c.nii.gz")));
  EXPECT_FALSE(fs::exists(path("out/b.nii.gz")));
  EXPECT_FALSE(fs::exists(path("out/d.nii.gz")));
}

TEST_F(SegmentCommandTest, BadInputsGetOneClearLineAndTouchNothing) {
  write_bytes(path("text.nii.gz"), "not an image\n");
  EXPECT_TRUE(is_one_line_error(segment({"-i", path("missing.nii.gz"), "-o", path("o.nii.gz")}), {"missing.nii.gz", "no such file"}));
  EXPECT_TRUE(is_one_line_error(segment({"-i", path("text.nii.gz"), "-o", path("o.nii.gz")}), {"text.nii.gz", "not a readable image"}));
  write_test_image(path("whole.nii.gz"), oblique_anisotropic({24, 24, 24}), 4);
  const std::string whole = read_bytes(path("whole.nii.gz"));
  write_bytes(path("cut.nii.gz"), whole.substr(0, whole.size() / 2));
  EXPECT_TRUE(is_one_line_error(segment({"-i", path("cut.nii.gz"), "-o", path("o.nii.gz")}), {"cut.nii.gz", "truncated"}));
  fs::create_directory(path("empty"));
  EXPECT_TRUE(is_one_line_error(segment({"-i", path("empty"), "-o", path("o.nii.gz")}), {"empty", "no DICOM series"}));
  EXPECT_TRUE(is_one_line_error(segment({"-i", path("whole.nii.gz"), "-o", path("whole.nii.gz")}), {"whole.nii.gz", "equals the input"}));
  EXPECT_TRUE(is_one_line_error(segment({"-i", path("whole.nii.gz"), "-o", folder_.path().string() + "/./whole.nii.gz"}),
                                {"whole.nii.gz", "equals the input"}));
  EXPECT_EQ(read_bytes(path("whole.nii.gz")), whole);  // not overwritten
  EXPECT_TRUE(is_one_line_error(segment({"-i", path("whole.nii.gz"), "-o", path("no/such/folder/o.nii.gz")}),
                                {"o.nii.gz", "output folder does not exist"}));
  EXPECT_FALSE(fs::exists(path("o.nii.gz")));
}

TEST_F(SegmentCommandTest, UnwritableOutputFolderIsRefused) {
  write_test_image(path("scan.nii.gz"), oblique_anisotropic({16, 16, 16}), 7);
  fs::create_directory(path("locked"));
  const auto read_only = fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read |
                         fs::perms::group_exec | fs::perms::others_read | fs::perms::others_exec;
  fs::permissions(path("locked"), read_only);
  // Root writes anywhere, so as root the command runs as nobody (setpriv), with the test's
  // folders opened up for reading.
  std::string prefix;
  if (::geteuid() == 0) {
    if (run_shell("setpriv --reuid=65534 --regid=65534 --clear-groups true") != 0) {
      GTEST_SKIP() << "running as root and cannot drop privileges with setpriv";
    }
    const auto readable = read_only | fs::perms::owner_write;
    fs::permissions(folder_.path(), readable);
    fs::permissions(suite_->path(), readable);
    prefix = "setpriv --reuid=65534 --regid=65534 --clear-groups ";
  }
  const RunResult result = run_cli(folder_.path(),
                                   {"segment", "-m", model(), "--quiet", "--no-tta", "--device", "cpu", "-i",
                                    path("scan.nii.gz"), "-o", path("locked/seg.nii.gz")},
                                   prefix);
  EXPECT_TRUE(is_one_line_error(result, {"seg.nii.gz", "not writable"}));
  EXPECT_TRUE(fs::is_empty(path("locked")));
}

TEST_F(SegmentCommandTest, NanVoxelsAreRefused) {
  const io::Geometry g = oblique_anisotropic({16, 16, 16});
  Tensor voxels = random_tensor({16, 16, 16, 1}, 5);
  voxels.data<float>()[100] = std::nanf("");
  io::write_float_image(path("nan.nii.gz"), voxels, g);
  EXPECT_TRUE(is_one_line_error(segment({"-i", path("nan.nii.gz"), "-o", path("o.nii.gz")}), {"nan.nii.gz", "NaN"}));
}

TEST_F(SegmentCommandTest, FourDimensionalImageIsRefused) {
  if (!python_has("nibabel")) GTEST_SKIP() << "python3-nibabel missing";
  ASSERT_EQ(run_python(folder_.path(), "import nibabel as nib, numpy as np\n"
                                       "nib.save(nib.Nifti1Image(np.ones((16,16,16,2), np.float32), np.eye(4)), 'four.nii.gz')\n"),
            0);
  EXPECT_TRUE(is_one_line_error(segment({"-i", path("four.nii.gz"), "-o", path("o.nii.gz")}), {"four.nii.gz", "4D image"}));
}

}  // namespace
}  // namespace voxmamba
