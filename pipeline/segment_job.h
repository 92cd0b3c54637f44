#pragma once
// `voxmamba segment` (pipeline.md): an image file, a DICOM series folder, or a folder of cases
// in nnU-Net naming (CASE_0000.nii.gz, one file per channel) in; label maps in each input's
// exact geometry out, written atomically.
#include <map>
#include <string>
#include <vector>

#include "pipeline/sliding_window_inference.h"

namespace voxmamba::pipeline {

struct SegmentRequest {
  std::string input, output, model;
  std::string device = "auto";
  std::string precision = "auto";  // see choose_precision
  std::string series;        // DICOM series UID; empty: the folder must hold one series
  std::string stats;         // JSON file for per-label voxel counts and volumes, or empty
  double overlap = 0.5;
  bool tta = true;
  bool largest_component = false;   // keep each label's largest connected component
  bool save_probabilities = false;  // also write <output stem>_probabilities.npy [z, y, x, classes]
};

struct LabelStatistics {
  std::int64_t voxels = 0;
  double millilitres = 0;
};

struct CaseResult {
  std::string name, input, output, error;  // error empty on success
  std::map<int, LabelStatistics> labels;
  std::int64_t passes = 0;
  double seconds = 0;
};

struct SegmentSummary {
  std::vector<CaseResult> cases;
  int failures() const;
};

// Throws Error for problems that stop everything (model, device, output folder); a bad case in
// a folder is recorded in its CaseResult and the others go on.
SegmentSummary run_segment(const SegmentRequest& request, const ProgressCallback& progress = {});

}  // namespace voxmamba::pipeline
