#pragma once
// Post-processing of label maps (pipeline.md `--largest-component`; nnU-Net's
// remove_all_but_largest_component): for each foreground label, voxels outside its largest
// 6-connected component become background.
#include "core/tensor.h"

namespace voxmamba::pipeline {

// labels [D, H, W] int32, modified in place; label 0 is background.
void keep_largest_component_per_label(Tensor& labels);

}  // namespace voxmamba::pipeline
