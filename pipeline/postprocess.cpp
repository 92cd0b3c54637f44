#include "pipeline/postprocess.h"

#include <map>
#include <vector>

namespace voxmamba::pipeline {

void keep_largest_component_per_label(Tensor& labels) {
  if (labels.rank() != 3 || labels.dtype() != DType::i32) {
    throw Error("largest component: labels must be int32 [D, H, W], got " + shape_string(labels.shape()));
  }
  const std::int64_t D = labels.dim(0), H = labels.dim(1), W = labels.dim(2), count = labels.numel();
  std::int32_t* value = labels.data<std::int32_t>();
  std::vector<std::int32_t> component(static_cast<std::size_t>(count), -1);
  std::vector<std::int64_t> sizes;
  std::vector<std::int32_t> component_label;
  std::vector<std::int64_t> stack;
  // Flood fill with an explicit stack: components can hold millions of voxels.
  for (std::int64_t seed = 0; seed < count; ++seed) {
    if (value[seed] == 0 || component[seed] >= 0) continue;
    const std::int32_t id = static_cast<std::int32_t>(sizes.size());
    sizes.push_back(0);
    component_label.push_back(value[seed]);
    component[seed] = id;
    stack.push_back(seed);
    while (!stack.empty()) {
      const std::int64_t v = stack.back();
      stack.pop_back();
      ++sizes[id];
      const std::int64_t w = v % W, h = (v / W) % H, d = v / (W * H);
      const std::int64_t neighbours[6][2] = {{w > 0, v - 1}, {w + 1 < W, v + 1}, {h > 0, v - W}, {h + 1 < H, v + W},
                                             {d > 0, v - W * H}, {d + 1 < D, v + W * H}};
      for (const auto& [inside, n] : neighbours) {
        if (inside && component[n] < 0 && value[n] == value[seed]) {
          component[n] = id;
          stack.push_back(n);
        }
      }
    }
  }
  std::map<std::int32_t, std::int32_t> largest;  // label -> its largest component (first on ties)
  for (std::int32_t id = 0; id < static_cast<std::int32_t>(sizes.size()); ++id) {
    auto found = largest.find(component_label[id]);
    if (found == largest.end() || sizes[id] > sizes[found->second]) largest[component_label[id]] = id;
  }
  for (std::int64_t v = 0; v < count; ++v) {
    if (value[v] != 0 && largest[value[v]] != component[v]) value[v] = 0;
  }
}

}  // namespace voxmamba::pipeline
